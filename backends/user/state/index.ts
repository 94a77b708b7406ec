/**
 * The state modules in the order restore needs them: the root's namespaces
 * first (ipc recreates the SysV segments memory attaches), memory rebuilds the
 * address space (and tears down the placeholder's), files and signals use
 * it (the terminals a session leader got from cr-mktree too), process state
 * ends with the credentials, cpu state comes last of all.
 */
import { cpu } from './cpu.js';
import { files } from './files.js';
import { ipc } from './ipc.js';
import { memory } from './memory.js';
import type { StateModule } from './module.js';
import { namespaces } from './namespaces.js';
import { processState } from './process.js';
import { signals } from './signals.js';
import { terminals } from './tty.js';

export const STATE_MODULES: StateModule[] = [namespaces, ipc, memory, files, terminals, signals, processState, cpu];

/**
 * A task's children are forked from it once the modules before this index
 * have restored it: they inherit its namespaces and memory, and get their
 * own files, terminals, signals, credentials and threads afterwards.
 */
export const FORKED_AFTER = STATE_MODULES.indexOf(memory) + 1;
