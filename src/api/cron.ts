/**
 * Installs cron-parser as the parser of cron schedules (`./schedule.ts`). Importing this module
 * is what makes cron schedules parse synchronously: the controller imports it; `portager sync`
 * loads it only for a document with a cron schedule ({@linkcode loadCronParser}), since
 * cron-parser and luxon cost ~8 ms of start-up CPU and bring the bundle's CommonJS shim.
 * @module
 */
import { CronExpressionParser } from "cron-parser";
import { installCronParser } from "./schedule.ts";

installCronParser(CronExpressionParser);

export { loadCronParser } from "./schedule.ts";
