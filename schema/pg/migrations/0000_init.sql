CREATE TABLE "policies" (
	"name" text PRIMARY KEY NOT NULL,
	"data" "bytea" NOT NULL,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "secret_versions" (
	"path" text NOT NULL,
	"version" integer NOT NULL,
	"data" "bytea",
	"created_at" bigint NOT NULL,
	"deleted_at" bigint,
	"destroyed" boolean DEFAULT false NOT NULL,
	CONSTRAINT "secret_versions_path_version_pk" PRIMARY KEY("path","version")
);
--> statement-breakpoint
CREATE TABLE "secrets" (
	"path" text PRIMARY KEY NOT NULL,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL,
	"latest_version" integer NOT NULL,
	"revision" integer NOT NULL,
	"max_versions" integer,
	"cas_required" boolean,
	"delete_version_after_ms" bigint,
	"custom_metadata" "bytea",
	"oldest_version" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "store_meta" (
	"key" text PRIMARY KEY NOT NULL,
	"value" text NOT NULL
);
--> statement-breakpoint
ALTER TABLE "secret_versions" ADD CONSTRAINT "secret_versions_path_secrets_path_fk" FOREIGN KEY ("path") REFERENCES "public"."secrets"("path") ON DELETE cascade ON UPDATE no action;