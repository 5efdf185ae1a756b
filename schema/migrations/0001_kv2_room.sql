ALTER TABLE `secrets` ADD `max_versions` integer;--> statement-breakpoint
ALTER TABLE `secrets` ADD `cas_required` integer;--> statement-breakpoint
ALTER TABLE `secrets` ADD `delete_version_after_ms` integer;--> statement-breakpoint
ALTER TABLE `secrets` ADD `custom_metadata` blob;