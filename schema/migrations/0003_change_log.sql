CREATE TABLE `change_log` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`path` text NOT NULL,
	`version` integer NOT NULL,
	`kind` text NOT NULL,
	`time` integer NOT NULL
);
