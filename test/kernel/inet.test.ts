/**
 * The kernel backend on TCP and UDP sockets: each test runs a program that
 * builds its sockets, is checkpointed (and killed), restarted, and then
 * checks its own sockets (test/kernel/programs/kinet.c).  A connection to
 * a peer outside the tree is saved with --tcp-established, its packets
 * held back by the network lock until the restart, and refused by name
 * without it.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from '../lib/modes.js';
import * as assert from 'uvu/assert';
import { kernelBackend } from '../../backends/kernel/index.js';
import { netlockPath } from '../../backends/kernel/inet.js';
import { CrError } from '../../userspace/errors.js';
import { alive, cr, sleep, tempDir } from '../lib/harness.js';
import { dmesgTrouble, kprogram, selfCheck, skipReason, startTo, waitFor } from './env.js';

const t = skipReason ? test.skip : test;

t('TCP listeners (IPv4 and IPv6) and a bound socket keep their ports and accept again', async () => {
  await selfCheck('kinet', ['listen'], [
    /inet #\d+: tcp socket listening on 127\.0\.0\.1:\d+ \(backlog 7\); reuseaddr/, /options: TCP_NODELAY=1/,
    /inet #\d+: tcp6 socket listening on \[::1\]:\d+ \(backlog 3\)/, /options: IPV6_V6ONLY=1/, /inet #\d+: tcp socket bound to 127\.0\.0\.1:\d+$/m,
  ]);
});

t('established connections between two tasks of the tree keep their bytes in flight both ways', async () => {
  await selfCheck('kinet', ['established'], [
    /inet #\d+: tcp connection 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ \(peer #\d+ in the image\): \d{6} bytes to send \(\d+ never sent\), 3000 to read/,
    /inet #\d+: tcp connection 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ \(peer #\d+ in the image\): 0 bytes to send \(0 never sent\), \d+ to read; .*rcvbuf 16384/,
    /inet #\d+: tcp6 connection \[::1\]:\d+ -> \[::1\]:\d+ \(peer #\d+ in the image\): 0 bytes to send \(0 never sent\), 9 to read/,
    /options: .*TCP_NODELAY=1 TCP_KEEPIDLE=33 .*SO_KEEPALIVE=1/,
  ]);
});

t('UDP sockets keep their queued datagrams, senders and connections', async () => {
  await selfCheck('kinet', ['udp'], [
    /inet #\d+: udp socket bound to 127\.0\.0\.1:\d+, 3 datagrams queued; rcvbuf 131072/, /datagram to #\d+ from 127\.0\.0\.1:\d+ to 127\.0\.0\.1: 5 bytes/,
    /inet #\d+: udp socket bound to 127\.0\.0\.1:\d+, connected to 127\.0\.0\.1:\d+, 0 datagrams queued/, /inet #\d+: udp6 socket bound to \[::1\]:\d+, 2 datagrams queued/,
  ]);
});

/** A peer outside the tree: answers "ping-before" and "ping-after", and records what it got. */
async function outsidePeer(): Promise<{ port: number; got: () => string; conn: () => net.Socket | undefined; closed: Promise<void>; close: () => void }> {
  let got = '';
  let sock: net.Socket | undefined;
  let closed!: () => void;
  const done = new Promise<void>((resolve) => (closed = resolve));
  const server = net.createServer((s) => {
    sock = s;
    s.on('data', (d) => {
      got += d.toString();
      if (got === 'ping-before\n') s.write('pong-before\n');
      if (got.endsWith('ping-after\n')) s.write('pong-after\n');
    });
    s.on('end', () => {
      s.end();
      closed();
    });
    s.on('error', () => closed());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, got: () => got, conn: () => sock, closed: done, close: () => server.close() };
}

t('with --tcp-established a connection to a peer outside the tree survives, its packets held back meanwhile', async () => {
  const peer = await outsidePeer();
  try {
    const dir = tempDir('kinetout');
    const images = tempDir('kinetoutimg');
    const out = `${dir}/out.txt`;
    const child = startTo(kprogram('kinet'), ['outside', String(peer.port)], out);
    await waitFor(out, 'ready');
    await kernelBackend.dump({ pid: child.pid, dir: images, tcpEstablished: true });
    assert.is(await child.done, 'SIGKILL');
    assert.ok(fs.existsSync(netlockPath(images)), 'the image names its network lock');
    const show = (await kernelBackend.describe(images)).lines.join('\n');
    assert.match(show, /inet #\d+: tcp connection 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ \(to a peer outside the tree\): 0 bytes to send \(0 never sent\), 12 to read/, show);
    assert.match(show, /network lock crlab_lock_\S+: its connections' packets are held back until the restore/, show);
    // the peer knows nothing of it: what it sends now waits for the restarted task
    peer.conn()!.write('while-down\n');
    const r = await kernelBackend.restore({ dir: images });
    process.kill(r.pids[0], 'SIGUSR1');
    const status = await r.wait();
    const text = fs.readFileSync(out, 'utf8');
    assert.not.match(text, /FAIL/, text);
    assert.equal(status, { code: 0, signal: null }, text);
    await peer.closed;
    assert.is(peer.got(), 'ping-before\nping-after\n');
    assert.equal(dmesgTrouble(), []);
  } finally {
    peer.close();
  }
});

t('without --tcp-established a connection to a peer outside the tree is refused by name, and the task runs on', async () => {
  const peer = await outsidePeer();
  try {
    const out = `${tempDir('kinetref')}/out.txt`;
    const child = startTo(kprogram('kinet'), ['outside', String(peer.port)], out);
    await waitFor(out, 'ready');
    const images = tempDir('kinetrefimg');
    const err = await kernelBackend.dump({ pid: child.pid, dir: images }).catch((e: unknown) => e);
    assert.instance(err, CrError);
    assert.match((err as Error).message, /pid \d+ fd \d+: tcp connection 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ to a peer outside the tree is not saved without --tcp-established/);
    assert.ok(alive(child.pid), 'a refused checkpoint leaves the task running');
    assert.not.ok(fs.existsSync(netlockPath(images)), 'and holds no network lock');
    // the connection still works: the task goes on as if nothing happened
    peer.conn()!.write('while-down\n');
    process.kill(child.pid, 'SIGUSR1');
    assert.is(await child.done, 0);
    assert.is(peer.got(), 'ping-before\nping-after\n');
    assert.equal(dmesgTrouble(), []);
  } finally {
    peer.close();
  }
});

/** GET @file from 127.0.0.1:@port over HTTP/1.0: the whole reply. */
function httpGet(port: number, file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1', () => c.write(`GET /${file} HTTP/1.0\r\n\r\n`));
    const parts: Buffer[] = [];
    c.on('data', (x) => parts.push(x));
    c.on('end', () => resolve(Buffer.concat(parts).toString()));
    c.on('error', reject);
  });
}

t('python3 -m http.server, dumped between requests through cr, comes back serving on its port', async () => {
  const dir = tempDir('khttp');
  const www = path.join(dir, 'www');
  fs.mkdirSync(www);
  fs.writeFileSync(path.join(www, 'small.txt'), 'hello\n');
  const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const out = path.join(dir, 'out.txt');
  const server = startTo(python, ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', www], out);
  let restored = 0;
  try {
    let port = 0;
    for (let i = 0; i < 600 && !port; i++) {
      await sleep(50);
      port = Number(/ port (\d+) /.exec(fs.readFileSync(out, 'utf8'))?.[1] ?? 0);
    }
    assert.ok(port, 'the server listens');
    assert.match(await httpGet(port, 'small.txt'), /^HTTP\/1\.0 200 OK\r\n[\s\S]*\r\n\r\nhello\n$/);
    // its request thread is gone once the reply is out
    for (let i = 0; i < 200 && fs.readdirSync(`/proc/${server.pid}/task`).length > 1; i++) await sleep(20);
    const images = path.join(dir, 'img');
    const d = await cr(['dump', '--backend=kernel', '-t', String(server.pid), '-D', images]);
    assert.is(d.exitCode, 0, d.all);
    assert.is(await server.done, 'SIGKILL');
    const show = await cr(['show', images]);
    assert.match(show.stdout, new RegExp(`inet #\\d+: tcp socket listening on 127\\.0\\.0\\.1:${port} \\(backlog \\d+\\)`), show.all);
    const r = await cr(['restore', '--backend=kernel', '-D', images, '--detach']);
    assert.is(r.exitCode, 0, r.all);
    restored = Number(r.stdout.trim());
    assert.is(restored, server.pid);
    assert.match(await httpGet(port, 'small.txt'), /^HTTP\/1\.0 200 OK\r\n[\s\S]*\r\n\r\nhello\n$/);
    assert.match(await httpGet(port, 'missing.txt'), /^HTTP\/1\.0 404 /);
    assert.equal(dmesgTrouble(), []);
  } finally {
    try {
      process.kill(restored || server.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

test.run();
