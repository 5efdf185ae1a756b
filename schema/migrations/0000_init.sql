CREATE TABLE `policies` (
	`name` text PRIMARY KEY NOT NULL,
	`data` blob NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `secret_versions` (
	`path` text NOT NULL,
	`version` integer NOT NULL,
	`data` blob,
	`created_at` integer NOT NULL,
	`deleted_at` integer,
	`destroyed` integer DEFAULT false NOT NULL,
	PRIMARY KEY(`path`, `version`),
	FOREIGN KEY (`path`) REFERENCES `secrets`(`path`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `secrets` (
	`path` text PRIMARY KEY NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`latest_version` integer NOT NULL,
	`revision` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `store_meta` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL
);
