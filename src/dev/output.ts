/** What `bun run dev` prints (src/dev/up.ts): plain lines and `[dev]` notes. */
export const say = (line = '') => console.log(line);
export const note = (line: string) => console.log(`[dev] ${line}`);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
