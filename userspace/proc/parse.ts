/**
 * Parsers for the /proc files c/r reads, built with typescript-parsec:
 * one lexer and grammar per format, so a format change fails loudly at the
 * line it hits instead of yielding a wrong number.
 */
import fs from 'node:fs';
import {
  apply, buildLexer, expectEOF, expectSingleResult, opt_sc, rep_sc, seq, tok, type Parser,
} from 'typescript-parsec';
import { CrError } from '../errors.js';

function run<K, T>(what: string, lexer: ReturnType<typeof buildLexer<K>>, parser: Parser<K, T>, text: string): T {
  try {
    return expectSingleResult(expectEOF(parser.parse(lexer.parse(text))));
  } catch (err) {
    throw new CrError(`cannot parse ${what}: ${(err as Error).message}`);
  }
}

/**
 * A file of lines, each parsed by `line` on its own: the lexer copies the
 * rest of its input at every token and a repetition's results grow by
 * copying, so one parse over a whole file costs the square of its length.
 */
function runLines<K, T>(what: string, lexer: ReturnType<typeof buildLexer<K>>, line: Parser<K, T>, text: string): T[] {
  const lines = text.split(/(?<=\n)/);
  return lines.filter((l) => l !== '').map((l, i) => run(`${what} line ${i + 1}`, lexer, line, l));
}

// ---- /proc/PID/maps ---------------------------------------------------------

export interface MapsEntry {
  start: bigint;
  end: bigint;
  read: boolean;
  write: boolean;
  exec: boolean;
  shared: boolean;
  offset: bigint;
  dev: string;
  inode: bigint;
  /** File path, "[heap]"-style pseudo name, or "" for anonymous memory. */
  path: string;
}

enum M { Fixed, Space, Path, Newline, VmFlags }
const MAPS_RULES: [boolean, RegExp, M][] = [
  // The six fixed columns as one token (as stat's numbers): every process's
  // maps is read at each dump, and each token costs a try of every rule.
  [true, /^[0-9a-f]+-[0-9a-f]+ [r-][w-][x-][ps] [0-9a-f]+ [0-9a-f]+:[0-9a-f]+ \d+/g, M.Fixed],
  [false, /^[ \t]+/g, M.Space],
  [true, /^[/[][^\n]*/g, M.Path],
  [true, /^\n/g, M.Newline],
];
const mapsLexer = buildLexer<M>(MAPS_RULES);
const mapsLine = apply(
  seq(tok(M.Fixed), opt_sc(tok(M.Path)), tok(M.Newline)),
  ([fixed, path]): MapsEntry => {
    const [range, perms, offset, dev, inode] = fixed.text.split(' ');
    const dash = range.indexOf('-');
    return {
      start: BigInt(`0x${range.slice(0, dash)}`),
      end: BigInt(`0x${range.slice(dash + 1)}`),
      offset: BigInt(`0x${offset}`),
      inode: BigInt(inode), // decimal
      read: perms[0] === 'r',
      write: perms[1] === 'w',
      exec: perms[2] === 'x',
      shared: perms[3] === 's',
      dev,
      path: path ? path.text : '',
    };
  },
);

export function parseMaps(text: string): MapsEntry[] {
  return runLines('maps', mapsLexer, mapsLine, text);
}

// ---- /proc/PID/smaps --------------------------------------------------------

/** A mapping as smaps shows it: its maps line and its VmFlags ("rd", "mw", "dc"…). Shared: never changed. */
export interface SmapsEntry extends Readonly<MapsEntry> {
  readonly vmFlags: ReadonlySet<string>;
}

const smapsLexer = buildLexer<M>([...MAPS_RULES, [true, /^VmFlags:[^\n]*\n/g, M.VmFlags]]);
const smapsEntry = apply(
  seq(mapsLine, tok(M.VmFlags)),
  ([mapping, flags]): SmapsEntry => ({
    ...mapping,
    vmFlags: new Set(flags.text.slice('VmFlags:'.length).trim().split(/\s+/).filter(Boolean)),
  }),
);

/**
 * Entries parsed before, by their two lines: a forked child's mappings read
 * as its parent's, and a tree's are parsed once. Emptied when it grows past
 * PARSED_LIMIT.
 */
const parsedSmaps = new Map<string, SmapsEntry>();
const PARSED_LIMIT = 8192;

export function parseSmaps(text: string): SmapsEntry[] {
  // Only a mapping's maps line and its VmFlags are read: the twenty-odd size
  // lines between go before parsing. Mapping by mapping (see runLines());
  // a mapping without its VmFlags line is paired with the next and refused.
  const kept = text.match(/^(?:[0-9a-f]+-[0-9a-f]+ |VmFlags:)[^\n]*\n/gm) ?? [];
  const out: SmapsEntry[] = [];
  for (let i = 0; i < kept.length; i += 2) {
    const lines = kept[i] + (kept[i + 1] ?? '');
    let entry = parsedSmaps.get(lines);
    if (!entry) {
      entry = Object.freeze(run(`smaps mapping ${i / 2 + 1}`, smapsLexer, smapsEntry, lines));
      if (parsedSmaps.size >= PARSED_LIMIT) parsedSmaps.clear();
      parsedSmaps.set(lines, entry);
    }
    out.push(entry);
  }
  return out;
}

// ---- /proc/PID/stat ---------------------------------------------------------

export interface Stat {
  pid: number;
  comm: string;
  state: string;
  /** Every field after the state, as numbers: index 0 is field 4 (ppid) of proc(5). */
  fields: bigint[];
}

enum S { Num, Comm, State, Fields, Space }
const statLexer = buildLexer<S>([
  [true, /^-?\d+/g, S.Num],
  // The command may hold spaces and parentheses: it runs to the last ')'.
  [true, /^\(.*\)/g, S.Comm],
  // The fifty-odd numbers after the state, one token: a short-lived cr runs
  // the parser cold, where each token costs, and this file is read often.
  [true, /^[A-Za-z](?= )/g, S.State],
  [true, /^( -?\d+)+\n?$/g, S.Fields],
  [false, /^\s+/g, S.Space],
]);
const statParser = apply(
  seq(tok(S.Num), tok(S.Comm), tok(S.State), tok(S.Fields)),
  ([pid, comm, state, fields]): Stat => ({
    pid: Number(pid.text), comm: comm.text.slice(1, -1), state: state.text, fields: fields.text.trim().split(' ').map(BigInt),
  }),
);

export function parseStat(text: string): Stat {
  return run('stat', statLexer, statParser, text);
}

/** Named fields of /proc/PID/stat that c/r needs (proc(5) numbering). */
export function statField(stat: Stat, field: number): bigint {
  const v = stat.fields[field - 4];
  if (v === undefined) throw new CrError(`/proc/${stat.pid}/stat has no field ${field}`);
  return v;
}

// ---- "Key:<tab>value" files: status, fdinfo --------------------------------

enum K { Key, Value, Newline }
const kvLexer = buildLexer<K>([
  [true, /^[A-Za-z_][\w ()-]*:/g, K.Key],
  [true, /^[ \t]+[^\n]*/g, K.Value],
  [true, /^\n/g, K.Newline],
]);
const kvLine = apply(
  seq(tok(K.Key), opt_sc(tok(K.Value)), tok(K.Newline)),
  ([key, value]): [string, string] => [key.text.slice(0, -1), value ? value.text.trim() : ''],
);

/**
 * Parse a "Key: value" file into a map; repeated keys keep the first value.
 * With `keys`, only their lines are parsed, in one run: a status file has
 * sixty or so, and the dozen kept are short enough not to need runLines().
 */
export function parseKeyValues(text: string, keys?: readonly string[]): Map<string, string> {
  const pairs = keys
    ? run('key-value file', kvLexer, rep_sc(kvLine), text.split(/(?<=\n)/).filter((l) => keys.some((k) => l.startsWith(`${k}:`))).join(''))
    : runLines('key-value file', kvLexer, kvLine, text);
  const out = new Map<string, string>();
  for (const [k, v] of pairs) if (!out.has(k)) out.set(k, v);
  return out;
}

/** One value of a "Key: value" file, its first line of that key alone parsed (a status file has sixty or so). */
export function keyValue(text: string, key: string): string | undefined {
  const line = new RegExp(`^${key}:[^\\n]*\\n`, 'm').exec(text)?.[0];
  return line === undefined ? undefined : run(`key-value line ${key}`, kvLexer, kvLine, line)[1];
}

// ---- /proc/PID/limits ------------------------------------------------------------

enum L { Header, Name, Value, Units, Newline }
const limitsLexer = buildLexer<L>([
  [true, /^Limit +Soft Limit +Hard Limit +Units *\n/g, L.Header],
  [true, /^Max [a-z ]+?(?= {2,})/g, L.Name],
  [true, /^ +(unlimited|\d+)/g, L.Value],
  [true, /^ +[a-z]+/g, L.Units],
  [true, /^ *\n/g, L.Newline],
]);
const RLIM_INFINITY = 0xffffffffffffffffn;
const limitValue = (t: string) => (t.trim() === 'unlimited' ? RLIM_INFINITY : BigInt(t.trim()));
const limitLine = apply(
  seq(tok(L.Name), tok(L.Value), tok(L.Value), opt_sc(tok(L.Units)), tok(L.Newline)),
  ([name, cur, max]) => ({ name: name.text, cur: limitValue(cur.text), max: limitValue(max.text) }),
);

/**
 * The resource limits in /proc/PID/limits, in RLIMIT_* order. Anyone may
 * read them, where prlimit(2) on another user's task needs CAP_SYS_RESOURCE.
 */
export function parseLimits(text: string): { name: string; cur: bigint; max: bigint }[] {
  return run('limits', limitsLexer, apply(seq(tok(L.Header), rep_sc(limitLine)), ([, lines]) => lines), text);
}

// ---- convenience readers ------------------------------------------------------

export function readProc(pid: number, file: string): string {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch (err) {
    throw new CrError(`cannot read /proc/${pid}/${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}

export const procMaps = (pid: number) => parseMaps(readProc(pid, 'maps'));
export const procSmaps = (pid: number) => parseSmaps(readProc(pid, 'smaps'));
export const procStat = (pid: number) => parseStat(readProc(pid, 'stat'));
export const procStatus = (pid: number, keys?: readonly string[]) => parseKeyValues(readProc(pid, 'status'), keys);
export const statusField = (pid: number, key: string) => keyValue(readProc(pid, 'status'), key);
export const procLimits = (pid: number) => parseLimits(readProc(pid, 'limits'));
export const procFdinfo = (pid: number, fd: number) => parseKeyValues(readProc(pid, `fdinfo/${fd}`));

/**
 * The process at `root` and, parents first, its children (from every
 * thread's /proc/PID/task/TID/children) that `keep` admits, with theirs.
 */
export function processTree(root: number, keep: (pid: number) => boolean = () => true): number[] {
  const pids: number[] = [];
  const visit = (p: number) => {
    pids.push(p);
    let tids: string[] = [];
    try {
      tids = fs.readdirSync(`/proc/${p}/task`);
    } catch {
      return; // gone
    }
    for (const tid of tids) {
      let children: number[] = [];
      try {
        children = fs.readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
      } catch {
        /* a thread that ended meanwhile */
      }
      children.filter(keep).forEach(visit);
    }
  };
  visit(root);
  return pids;
}

/** The sockets in a process's descriptor table: each descriptor and its socket's inode. */
export function socketFds(pid: number): { fd: number; ino: number }[] {
  const sockets: { fd: number; ino: number }[] = [];
  let fds: string[] = [];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return sockets; // gone, or a zombie
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) sockets.push({ fd: Number(fd), ino: Number(m[1]) });
    } catch {
      /* closed meanwhile */
    }
  }
  return sockets;
}

/** Inodes of the sockets in a process's descriptor table. */
export const socketInodes = (pid: number): number[] => socketFds(pid).map((s) => s.ino);

/** A hex signal mask (SigPnd, ShdPnd, SigBlk, …) from the text of a status file, as a bigint. */
export function statusMask(status: string, key: string): bigint {
  const v = keyValue(status, key);
  if (v === undefined) throw new CrError(`status has no ${key}`);
  return BigInt(`0x${v}`);
}
