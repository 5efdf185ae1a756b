/**
 * `spike agent --config agent.yaml`: renders secrets into files and keeps them current, like
 * Vault Agent's templates or spiffe-helper (issue 14; docs/agent.md has the configuration and
 * the template language, cli/template.ts implements it).
 *
 * Each template is rendered when the agent starts and again whenever a watch event
 * (src/sdk/watch.ts) names one of the secrets it reads. A file is written only when its rendered
 * content differs from what the file holds (so its mtime moves only on a real change, also
 * across agent restarts), always with mode 0600, atomically: a temporary file in the same
 * directory, written, fsynced, renamed over the destination, then the directory fsynced, so a
 * reader sees the old content or the new one, never a mix. After a file changed, the template's
 * `command` runs (once per change, after the rename).
 *
 * The agent runs as a workload on its own SVID (it needs `read` on the paths, no SPIKE role); the
 * SDK follows the SVID across rotations and the watch stream is resumed on a new connection with
 * the new SVID each time. It keeps running until SIGINT or SIGTERM (exit 0); `--once` renders
 * and exits. Values never appear in its output: lines name files and paths only.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'bun';
import { defineCommand } from 'citty';
import YAML from 'yaml';
import { follow, readSnapshot, type Snapshot } from '../delivery.ts';
import { commandMeta } from '../help.ts';
import { EXIT, fail, writeErr } from '../output.ts';
import { connect, failApi } from '../session.ts';
import { parseTemplate, renderTemplate, type Template, TemplateError } from '../template.ts';

/** One template of the configuration, resolved. */
interface Entry {
  readonly name: string;
  readonly template: Template;
  /** Absolute path of the file to write. */
  readonly destination: string;
  /** Run after the file changed (argv), from the configuration's directory. */
  readonly command?: readonly string[];
}

const say = (message: string) => writeErr(`spike agent: ${message}`);
const TEMPLATE_KEYS = new Set(['destination', 'contents', 'source', 'command']);

function usage(message: string): never {
  fail(`Error: ${message}`, EXIT.usage);
}

function commandOf(raw: unknown, where: string): string[] | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw === 'string' && raw.trim() !== '') return ['sh', '-c', raw];
  if (Array.isArray(raw) && raw.length > 0 && raw.every((w) => typeof w === 'string')) {
    return raw as string[];
  }
  usage(`${where}.command must be a string (run by sh -c) or a list of words.`);
}

/** Reads and checks the configuration; every problem is a usage error (exit 2). */
function loadConfig(file: string): Entry[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    usage(`cannot read the configuration file ${file}.`);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (error) {
    usage(`${file} is not valid YAML (${(error as Error).message.split('\n')[0]}).`);
  }
  const base = path.dirname(path.resolve(file));
  const templates = (doc as { templates?: unknown } | null)?.templates;
  const extra = Object.keys((doc as object | null) ?? {}).filter((k) => k !== 'templates');
  if (extra.length > 0) usage(`${file}: unknown setting '${extra[0]}' (expected: templates).`);
  if (!Array.isArray(templates) || templates.length === 0) {
    usage(`${file} needs a non-empty 'templates' list.`);
  }
  const seen = new Set<string>();
  return templates.map((raw: unknown, i: number) => {
    const where = `templates[${i}]`;
    if (typeof raw !== 'object' || raw === null) usage(`${where} must be a mapping.`);
    const t = raw as Record<string, unknown>;
    const unknown = Object.keys(t).find((k) => !TEMPLATE_KEYS.has(k));
    if (unknown !== undefined) {
      usage(`${where}: unknown setting '${unknown}' (destination, contents, source, command).`);
    }
    if (typeof t.destination !== 'string' || t.destination === '') {
      usage(`${where}.destination must be a file path.`);
    }
    const destination = path.resolve(base, t.destination);
    if (seen.has(destination)) usage(`${where}: two templates write ${t.destination}.`);
    seen.add(destination);
    let body: string;
    if (typeof t.contents === 'string' && t.source === undefined) body = t.contents;
    else if (typeof t.source === 'string' && t.contents === undefined) {
      try {
        body = fs.readFileSync(path.resolve(base, t.source), 'utf8');
      } catch {
        usage(`${where}: cannot read the source ${t.source}.`);
      }
    } else usage(`${where} needs exactly one of contents (inline) and source (a file).`);
    let template: Template;
    try {
      template = parseTemplate(body, `${file} ${where}`);
    } catch (error) {
      if (error instanceof TemplateError) usage(`${error.message}.`);
      throw error;
    }
    const command = commandOf(t.command, where);
    return { name: t.destination, template, destination, ...(command ? { command } : {}) };
  });
}

/** Writes `content` to `file` atomically with mode 0600 (see the module header). */
function writeAtomic(file: string, content: string): void {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  const fd = fs.openSync(temp, 'wx', 0o600);
  try {
    fs.fchmodSync(fd, 0o600);
    fs.writeSync(fd, content);
    fs.fsyncSync(fd);
  } catch (error) {
    fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    throw error;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(temp, file);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw error;
  }
  const dirFd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dirFd);
  } finally {
    fs.closeSync(dirFd);
  }
}

function current(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Renders every entry; writes those whose content changed; returns the changed ones. */
function renderAll(entries: readonly Entry[], snapshot: Snapshot): Entry[] {
  const changed: Entry[] = [];
  for (const entry of entries) {
    const content = renderTemplate(entry.template, snapshot);
    if (current(entry.destination) === content) continue;
    fs.mkdirSync(path.dirname(entry.destination), { recursive: true, mode: 0o700 });
    writeAtomic(entry.destination, content);
    say(`wrote ${entry.name}`);
    changed.push(entry);
  }
  return changed;
}

async function runCommands(entries: readonly Entry[], cwd: string): Promise<void> {
  for (const entry of entries) {
    if (entry.command === undefined) continue;
    const proc = spawn([...entry.command], {
      cwd,
      stdin: 'ignore',
      stdout: 'inherit',
      stderr: 'inherit',
    });
    const code = await proc.exited;
    if (code !== 0) say(`the command of ${entry.name} exited ${code}`);
  }
}

const agent = defineCommand({
  meta: commandMeta(['agent'], 'Render secrets into files (0600, atomic) and keep them current', [
    'spike agent --config agent.yaml',
    'spike agent --config agent.yaml --once   # render once and exit',
  ]),
  args: {
    config: {
      type: 'string',
      alias: 'c',
      description: 'The agent configuration (YAML; see docs/agent.md)',
      valueHint: 'file',
    },
    once: { type: 'boolean', description: 'Render once and exit (no watching)' },
  },
  async run({ args }) {
    if (args.config === undefined || args.config === '') usage('--config <file> is required.');
    const entries = loadConfig(args.config);
    const cwd = path.dirname(path.resolve(args.config));
    const paths = [...new Set(entries.flatMap((e) => e.template.paths))];
    const client = await connect();
    const stop = new AbortController();
    const end = () => stop.abort();
    process.on('SIGINT', end);
    process.on('SIGTERM', end);
    try {
      const round = async (snapshot: Snapshot) => {
        await runCommands(renderAll(entries, snapshot), cwd);
      };
      if (args.once === true) {
        await round(await readSnapshot(client, paths));
        return;
      }
      await follow({
        client,
        paths,
        signal: stop.signal,
        onRound: round,
        onError: (error) => say(`render failed (${describe(error)}); files keep their content`),
        onReconnect: (attempt) => {
          if (attempt === 3) say('the watch stream is reconnecting');
        },
      });
    } catch (error) {
      if (error instanceof TemplateError) fail(`Error: ${error.message}.`);
      failApi(error, 'secret');
    } finally {
      process.off('SIGINT', end);
      process.off('SIGTERM', end);
      await client.close();
    }
  },
});

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export default agent;
