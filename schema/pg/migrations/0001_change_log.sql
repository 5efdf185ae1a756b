CREATE TABLE "change_log" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"path" text NOT NULL,
	"version" integer NOT NULL,
	"kind" text NOT NULL,
	"time" bigint NOT NULL
);
