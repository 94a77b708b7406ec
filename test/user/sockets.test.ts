/**
 * Sockets through dump and restore: unix sockets of every kind, TCP with
 * repair mode (between two processes of the tree, and to a peer outside it
 * under the network lock), UDP with queued datagrams, a real HTTP server;
 * and the sockets still refused, by name, with the task going on.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import * as assert from 'uvu/assert';
import { alive, cr, programBin, roundTrip, sleep, start, tempDir, undisturbed, waitLines, withoutPid } from '../lib/harness.js';
import { dumpFaults } from '../lib/faults.js';
import { crTest, test } from '../lib/modes.js';

/** The nftables tables of cr's network locks now. */
async function locks(): Promise<string[]> {
  const r = await execa('nft', ['list', 'tables'], { reject: false });
  return String(r.stdout).split('\n').filter((l) => l.includes('crlab_lock')).map((l) => l.trim().split(' ')[2]);
}

crTest('stream, datagram and seqpacket socket pairs keep their queues in both directions', async () => {
  const r = await roundTrip('unixpair', ['300'], 3);
  assert.match(r.show, /unix stream socket:\[\d+\] paired with socket:\[\d+\], 50000 bytes queued/);
  assert.match(r.show, /unix stream socket:\[\d+\] paired with socket:\[\d+\], 3000 bytes queued/);
  assert.match(r.show, /unix dgram socket:\[\d+\] paired with socket:\[\d+\], 3 messages queued/);
  assert.match(r.show, /unix seqpacket socket:\[\d+\] paired with socket:\[\d+\], 3 messages queued/);
  assert.is(r.restored, r.reference);
}, { sample: true });

crTest('datagram and seqpacket pairs with empty messages queued, some peeked at (for its size, or with SO_PEEK_OFF): every one comes back, in order', async () => {
  const r = await roundTrip('unixempty', ['100'], 3);
  assert.match(r.reference, /\nall good\n$/);
  assert.is(r.restored, r.reference);
  assert.match(r.show, /unix dgram socket:\[\d+\] paired with socket:\[\d+\], 6 messages queued/);
  assert.match(r.show, /unix seqpacket socket:\[\d+\] paired with socket:\[\d+\], 6 messages queued/);
});

crTest('unix sockets of every kind: names and socket files, accept queues, shutdowns, datagram senders, descriptors and credentials in flight', async () => {
  const r = await roundTrip('unixsk', ['150'], 3);
  assert.match(r.reference, /\nall good\n$/);
  assert.is(r.restored, r.reference);
  assert.match(r.show, /unix stream socket:\[\d+\] listen\.sock listening \(backlog 8, 2 not accepted yet\)/);
  assert.match(r.show, /unix stream socket:\[\d+\] listen\.sock accepted, paired with socket:\[\d+\], 3000 bytes queued/);
  assert.match(r.show, /unix seqpacket socket:\[\d+\] abstract @unixsk-\d+-seq accepted, paired with socket:\[\d+\], 1 messages queued, shut down for writing/);
  assert.match(r.show, /unix dgram socket:\[\d+\] \/tmp\/cr-unixsk-\w+\/dgram\.sock unconnected, 5 messages queued; passcred/);
  assert.match(r.show, /gone\.sock \(unlinked\) unconnected/);
  assert.match(r.show, /4 bytes queued \(3 descriptors in flight\)/);
  assert.match(r.show, /connected to a closed socket, 500 bytes queued, shut down both ways/);
  assert.match(r.show, /rcvtimeo=2500000us sndbuf=131072 rcvbuf=65536/);
});

crTest('unix socket names as long as sun_path holds, and relative names whose socket files lie further away than it reaches', async () => {
  const r = await roundTrip('unixlong', ['150'], 3);
  assert.match(r.reference, /\nall good\n$/);
  assert.is(r.restored, r.reference);
  assert.match(r.show, /unix stream socket:\[\d+\] l\.sock listening \(backlog 8, 2 not accepted yet\)/);
  assert.match(r.show, new RegExp(`unix stream socket:\\[\\d+\\] /tmp/cr-unixlong-\\w+/f/x{${108 - '/tmp/cr-unixlong-XXXXXX/f/'.length}} listening`));
});

crTest('TCP between two processes of the tree streams across the dump, every byte once and in order; IPv6, listeners, options', async () => {
  const r = await roundTrip('tcpsk', ['300'], 6);
  assert.match(r.reference, /\nall good\n$/);
  assert.is(r.restored, r.reference);
  assert.match(r.show, /tcp socket listening on 127\.0\.0\.1:\d+ \(backlog 5\); reuseaddr/);
  assert.match(r.show, /tcp connection 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ \(in the image\)/);
  assert.match(r.show, /tcp6 connection \[::1\]:\d+ -> \[::1\]:\d+ \(in the image\): [1-9]\d* bytes to send \([1-9]\d* never sent\), 5000 to read; keepalive .*nodelay=1 keepidle=77 keepintvl=11 keepcnt=4/);
  assert.match(r.show, /tcp connection 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ \(in the image\) CLOSE_WAIT: 0 bytes to send \(0 never sent\), 3000 to read/);
  assert.match(r.show, /tcp connection 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ \(in the image\) FIN_WAIT2: 0 bytes to send \(0 never sent\), 2000 to read/);
  assert.match(r.show, /tcp socket bound to 127\.0\.0\.1:\d+/);
  assert.match(r.show, /tcp6 socket unbound/);
  assert.not.match(r.show, /network lock/);
});

const pattern = (i: number, seed: number) => (i * 7 + Math.floor(i / 8192) + seed) & 0xff;

/**
 * The peer outside the tree: it streams its own pattern to the program
 * while the connection lasts, checks every byte of the program's, and
 * says what it saw once the program has closed its side.
 */
function streamingPeer(host: string) {
  const seen = { sent: 0, got: 0, broken: false, error: '' };
  let finished!: () => void;
  const done = new Promise<void>((r) => (finished = r));
  const server = net.createServer((sock) => {
    let ended = false;
    const timer = setInterval(() => {
      if (ended || sock.writableNeedDrain) return;
      const b = Buffer.alloc(4096);
      for (let i = 0; i < b.length; i++) b[i] = pattern(seen.sent + i, 1);
      sock.write(b);
      seen.sent += b.length;
    }, 10);
    sock.on('data', (d) => {
      for (let i = 0; i < d.length; i++) if (d[i] !== pattern(seen.got + i, 0)) seen.broken = true;
      seen.got += d.length;
    });
    sock.on('end', () => {
      ended = true;
      clearInterval(timer);
      sock.end(finished);
    });
    sock.on('error', (err) => {
      seen.error = err.message;
      clearInterval(timer);
      finished();
    });
  });
  const listening = new Promise<number>((r) => server.listen(0, host, () => r((server.address() as net.AddressInfo).port)));
  return { seen, done, listening, close: () => server.close() };
}

for (const host of ['127.0.0.1', '::1']) {
  test(`TCP to a peer outside the tree (${host}): refused without --tcp-established; with it the network is locked and the stream goes on`, async () => {
    const peer = streamingPeer(host);
    const port = await peer.listening;
    try {
      const dir = tempDir('tcppeer');
      const images = path.join(dir, 'img');
      const run = start('tcppeer', [host, String(port), '400'], path.join(dir, 'out.txt'));
      await waitLines(run.out, 4);
      const refused = await cr(['dump', '-t', String(run.pid), '-D', images]);
      assert.is.not(refused.exitCode, 0);
      assert.match(refused.stderr.trim(), new RegExp(`^cr: pid ${run.pid} fd 3: tcp6? connection \\S+:\\d+ -> \\S+:${port} to a peer outside the tree is not saved without --tcp-established$`));
      assert.ok(alive(run.pid), 'still running after the refusal');
      const before = await locks();
      const d = await cr(['dump', '-t', String(run.pid), '-D', images, '--tcp-established']);
      assert.is(d.exitCode, 0, d.all);
      await run.exited;
      const show = (await cr(['show', images])).stdout;
      const lock = /held by network lock (\w+)/.exec(show)?.[1];
      assert.ok(lock, `the image names its lock:\n${show}`);
      assert.ok((await locks()).includes(lock!), 'the lock holds while the tree is dumped');
      // The peer keeps writing meanwhile: its packets are dropped, not answered with a reset.
      await sleep(500);
      assert.is(peer.seen.error, '', 'no reset reached the peer');
      const restore = await cr(['restore', '-D', images]);
      assert.is(restore.exitCode, 0, restore.all);
      await peer.done;
      assert.equal(await locks(), before, 'the restore released the lock');
      const out = withoutPid(fs.readFileSync(run.out, 'utf8')).body;
      const m = /\nok: sent (\d+), received (\d+) bytes in order\n$/.exec(out);
      assert.ok(m, out.slice(-300));
      assert.is(peer.seen.error, '');
      assert.not.ok(peer.seen.broken, 'the peer saw every byte in order');
      assert.is(peer.seen.got, Number(m![1]), 'the peer got every byte the program sent, once');
      assert.is(Number(m![2]), peer.seen.sent, 'the program got every byte the peer sent, once');
    } finally {
      peer.close();
    }
  });
}

test('a failed dump and a dump with --leave-running give the connection back: out of repair mode, unlocked, streaming on', async () => {
  for (const how of ['failed', 'leave-running']) {
    const peer = streamingPeer('127.0.0.1');
    const port = await peer.listening;
    try {
      const dir = tempDir(`tcppeer-${how}`);
      const before = await locks();
      const run = start('tcppeer', ['127.0.0.1', String(port), '300', ...(how === 'failed' ? ['netlink'] : [])], path.join(dir, 'out.txt'));
      await waitLines(run.out, 4);
      const d = await cr(['dump', '-t', String(run.pid), '-D', path.join(dir, 'img'), '--tcp-established', ...(how === 'failed' ? [] : ['--leave-running'])]);
      if (how === 'failed') assert.match(d.stderr.trim(), /fd 4: netlink socket \(NETLINK_ROUTE\) is not supported$/);
      else assert.is(d.exitCode, 0, d.all);
      assert.equal(await locks(), before, `${how}: no lock left`);
      assert.ok(alive(run.pid), `${how}: still running`);
      assert.is(await run.exited, 0, `${how}: the program ends well`);
      await peer.done;
      const m = /\nok: sent (\d+), received (\d+) bytes in order\n$/.exec(withoutPid(fs.readFileSync(run.out, 'utf8')).body);
      assert.ok(m, `${how}: the program saw every byte in order`);
      assert.is(peer.seen.error, '', `${how}: no reset`);
      assert.not.ok(peer.seen.broken);
      assert.is(peer.seen.got, Number(m![1]));
      assert.is(Number(m![2]), peer.seen.sent);
    } finally {
      peer.close();
    }
  }
});

crTest('UDP sockets, bound or connected, IPv4 and IPv6, keep their queued datagrams and senders', async () => {
  const r = await roundTrip('udpsk', ['100'], 3);
  assert.match(r.reference, /\nall good\n$/);
  assert.is(r.restored, r.reference);
  assert.match(r.show, /udp socket bound to 127\.0\.0\.1:\d+, 4 datagrams queued; broadcast/);
  assert.match(r.show, /udp socket bound to 127\.0\.0\.1:\d+, connected to 127\.0\.0\.1:\d+, 1 datagrams queued/);
  assert.match(r.show, /udp6 socket bound to \[::1\]:\d+, 2 datagrams queued/);
});

crTest('UDP queues with empty datagrams, some peeked at before the dump: every one comes back, in order, and the peeked ones stay passed over', async () => {
  const r = await roundTrip('udpqueue', ['100'], 3);
  assert.match(r.reference, /\nall good\n$/);
  assert.is(r.restored, r.reference);
  assert.match(r.show, /udp socket bound to 127\.0\.0\.1:\d+, 8 datagrams queued \(3 empty ones peeked at\)/);
  assert.match(r.show, /udp socket bound to 127\.0\.0\.1:\d+, connected to 127\.0\.0\.1:\d+, 3 datagrams queued \(1 empty one peeked at\)/);
  assert.match(r.show, /udp6 socket bound to \[::1\]:\d+, 3 datagrams queued \(1 empty one peeked at\)/);
}, { sample: true });

// The dump takes UDP queues, and those of datagram and seqpacket pairs, out
// and puts them back: one that fails after that (dump-objects:4 comes right
// after the descriptors are saved) leaves the task with its queues as they
// were, every empty message peeked at included.
test('a failed dump leaves UDP queues and those of unix datagram and seqpacket pairs as they were, empty messages peeked at and all', async () => {
  for (const program of ['udpqueue', 'unixempty']) {
    await dumpFaults('user', {
      argv: () => [programBin(program), '1000'],
      ready: (dir) => waitLines(`${dir}/stdout`, 3),
      progress: (dir) => `${dir}/stdout`,
      answer: (dir) => withoutPid(fs.readFileSync(`${dir}/stdout`, 'utf8')).body,
    }, ['dump-frozen', 'dump-objects:4', 'dump-objects:6']);
  }
});

test('python3 -m http.server is dumped mid-reply and comes back serving: the client gets the rest of its reply, a new one is answered', async () => {
  const dir = tempDir('http');
  const www = path.join(dir, 'www');
  fs.mkdirSync(www);
  const body = crypto.randomBytes(16 << 20);
  fs.writeFileSync(path.join(www, 'big.bin'), body);
  fs.writeFileSync(path.join(www, 'small.txt'), 'hello\n');
  const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const out = fs.openSync(path.join(dir, 'out.txt'), 'w');
  const server = spawn(python, ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', www], { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const pid = server.pid!;
  const exited = new Promise<void>((r) => server.on('exit', () => r()));
  let port = 0;
  for (let i = 0; i < 300 && !port; i++) {
    await sleep(50);
    port = Number(/ port (\d+) /.exec(fs.readFileSync(path.join(dir, 'out.txt'), 'utf8'))?.[1] ?? 0);
  }
  assert.ok(port, 'the server listens');
  let restored = 0;
  try {
    // A client reads the start of a large reply, then stops reading: the server is stuck writing.
    const chunks: Buffer[] = [];
    let got = 0;
    let paused = false;
    const client = net.connect(port, '127.0.0.1');
    client.on('data', (d) => {
      chunks.push(d);
      got += d.length;
      if (!paused && got > 1 << 20) {
        paused = true;
        client.pause();
      }
    });
    const ended = new Promise<void>((r, j) => {
      client.on('end', r);
      client.on('error', j);
    });
    client.write('GET /big.bin HTTP/1.0\r\n\r\n');
    while (!paused) await sleep(20);
    await sleep(300);
    const images = path.join(dir, 'img');
    const refused = await cr(['dump', '-t', String(pid), '-D', images]);
    assert.match(refused.stderr, /tcp connection 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ to a peer outside the tree is not saved without --tcp-established/);
    const d = await cr(['dump', '-t', String(pid), '-D', images, '--tcp-established']);
    assert.is(d.exitCode, 0, d.all);
    await exited;
    const r = await cr(['restore', '-D', images, '--detach']);
    assert.is(r.exitCode, 0, r.all);
    restored = Number(r.stdout.trim());
    assert.is(restored, pid);
    client.resume();
    await ended;
    const reply = Buffer.concat(chunks);
    const head = reply.indexOf('\r\n\r\n');
    assert.match(reply.subarray(0, head).toString(), /^HTTP\/1\.0 200 OK\r\n/);
    assert.ok(reply.subarray(head + 4).equals(body), `the whole body, intact (${reply.length - head - 4} of ${body.length} bytes)`);
    // The same port answers a new request.
    const again = await new Promise<string>((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1', () => c.write('GET /small.txt HTTP/1.0\r\n\r\n'));
      const parts: Buffer[] = [];
      c.on('data', (x) => parts.push(x));
      c.on('end', () => resolve(Buffer.concat(parts).toString()));
      c.on('error', reject);
    });
    assert.match(again, /^HTTP\/1\.0 200 OK\r\n[\s\S]*\r\n\r\nhello\n$/);
  } finally {
    try {
      process.kill(restored || pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

test('sockets still not supported are refused at dump time, naming them, and the task goes on', async () => {
  const cases: [string, (sock: string) => RegExp][] = [
    ['connect', (sock) => new RegExp(`fd 3: unix stream socket connected to ${sock}, a socket outside the image is not supported$`)],
    ['netlink', () => /fd 3: netlink socket \(NETLINK_ROUTE\) is not supported$/],
    ['packet', () => /fd 3: packet socket is not supported$/],
    ['raw', () => /fd 3: raw inet socket \(protocol 1\) is not supported$/],
    ['backlog', () => /fd 3: tcp socket listening on 127\.0\.0\.1:\d+ with 1 connection not accepted yet is not supported$/],
    ['udpcork', () => /fd 3: udp socket on \S+:\d+ with a datagram being written \(UDP_CORK\) is not supported$/],
    // The error and the datagram are still there for the task after the refusal (its last line says so).
    ['udperror', () => /fd 3: udp socket connected to 127\.0\.0\.1:\d+ with an error pending \(an ICMP error not read yet\) is not supported$/],
    ['udpforeign', () => /fd 3: udp socket connected to 127\.0\.0\.1:\d+ with datagrams from others queued \(from before it connected\) is not supported$/],
  ];
  for (const [mode, message] of cases) {
    const dir = tempDir(`sock-${mode}`);
    const sock = path.join(dir, 'sock');
    const server = net.createServer((c) => c.on('error', () => {}));
    if (mode === 'connect') await new Promise<void>((r) => server.listen(sock, r));
    try {
      const ref = withoutPid(await undisturbed('sockrefuse', [mode, sock, '600'], dir)).body;
      fs.rmSync(path.join(dir, 'out.txt'));
      const run = start('sockrefuse', [mode, sock, '600'], path.join(dir, 'run.txt'));
      await waitLines(run.out, 3);
      const d = await cr(['dump', '-t', String(run.pid), '-D', tempDir(`sock-${mode}-img`)]);
      assert.is.not(d.exitCode, 0, `${mode}: refused`);
      assert.is(d.stderr.trim().split('\n').length, 1, `${mode}: one line of error, got:\n${d.stderr}`);
      assert.match(d.stderr.trim(), new RegExp(`^cr: pid ${run.pid} `));
      assert.match(d.stderr.trim(), message(sock));
      assert.ok(alive(run.pid), `${mode}: still running`);
      assert.is(await run.exited, 0);
      assert.is(withoutPid(fs.readFileSync(run.out, 'utf8')).body, ref, `${mode}: computes as if undisturbed`);
    } finally {
      server.close();
    }
  }
});

test.run();
