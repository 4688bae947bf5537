/**
 * Runs `revoker` on a pseudo-terminal (util-linux `script`), answering its question when it asks:
 * what an operator at a terminal sees and types.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { nodeArgs } from '../helpers/processes.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}

/** Output and exit code of a command run on a terminal. */
export interface TerminalRun {
  code: number | string;
  out: string;
}

/**
 * Runs `revoker args…` on a pseudo-terminal with `env`. When the output contains `prompt`, types
 * `answer` and Enter (once). Fails after `timeoutMs`.
 */
export async function revokerOnTerminal(args: string[], env: Record<string, string>, dialog?: { prompt: string | RegExp; answer: string }, timeoutMs = 60_000): Promise<TerminalRun> {
  const command = [process.execPath, ...nodeArgs('src/cli/main.ts', args)].map(shellQuote).join(' ');
  // -q quiet, -e exit with the command's code, -f flush at once, -c run this command; no typescript file.
  const child = spawn('script', ['-qefc', command, '/dev/null'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', TERM: 'dumb', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let answered = false;
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    if (dialog !== undefined && !answered && (typeof dialog.prompt === 'string' ? out.includes(dialog.prompt) : dialog.prompt.test(out))) {
      answered = true;
      child.stdin.write(`${dialog.answer}\n`);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | string>((resolve) => child.once('exit', (exitCode, signal) => resolve(exitCode ?? signal ?? -1)));
  clearTimeout(timer);
  child.stdin.destroy();
  // The terminal turns \n into \r\n: give tests plain lines.
  return { code, out: out.replace(/\r\n/g, '\n') };
}
