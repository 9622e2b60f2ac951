// Paths the user typed, resolved from where they typed them.
import { isAbsolute, resolve } from 'node:path';

/**
 * The folder relative paths are meant from: the shell's working directory. A package script
 * (`pnpm peft …`) runs in the repository root; the package manager passes the user's folder as
 * INIT_CWD, so that one is used while running under a script.
 */
export function userCwd(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  const init = env.INIT_CWD;
  if (init && isAbsolute(init) && env.npm_lifecycle_event !== undefined) return init;
  return cwd;
}

/** An absolute path for a path the user gave on the command line. */
export function userPath(path: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  return resolve(userCwd(env, cwd), path);
}

/** How a path the user gave reads in a message: as typed, plus where it was looked for when relative. */
export function shownPath(given: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  const full = userPath(given, env, cwd);
  return full === given ? given : `${given} (looked for at ${full})`;
}

/**
 * A path from the command line as the program should open it: unchanged when the program runs in
 * the user's folder; resolved from the user's folder when a package script moved it elsewhere.
 */
export function fromUser(path: string | undefined, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string | undefined {
  if (path === undefined) return undefined;
  return userCwd(env, cwd) === cwd ? path : userPath(path, env, cwd);
}
