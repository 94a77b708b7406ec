/** Unix socket pairs with data queued both ways; other sockets are refused at dump time. */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { alive, cr, roundTrip, start, tempDir, undisturbed, waitLines, withoutPid } from '../lib/harness.js';
import { crTest, test } from '../lib/modes.js';

crTest('stream, datagram and seqpacket socket pairs keep their queues in both directions', async () => {
  const r = await roundTrip('unixpair', ['300'], 3);
  assert.match(r.show, /unix stream socket:\[\d+\] paired with socket:\[\d+\], 50000 bytes queued/);
  assert.match(r.show, /unix stream socket:\[\d+\] paired with socket:\[\d+\], 3000 bytes queued/);
  assert.match(r.show, /unix dgram socket:\[\d+\] paired with socket:\[\d+\], 3 messages queued/);
  assert.match(r.show, /unix seqpacket socket:\[\d+\] paired with socket:\[\d+\], 3 messages queued/);
  assert.is(r.restored, r.reference);
}, { sample: true });

test('inet sockets and unix sockets on a path are refused, naming them, and the task goes on', async () => {
  const cases: [string, (sock: string) => RegExp][] = [
    ['inet', () => /fd 3: inet socket is not supported$/],
    ['listen', (sock) => new RegExp(`fd 3: socket is not supported \\(unix stream socket listening on ${sock}\\)$`)],
    ['connect', (sock) => new RegExp(`fd 3: socket is not supported \\(unix stream socket connected to ${sock}\\)$`)],
  ];
  for (const [mode, message] of cases) {
    const dir = tempDir(`sock-${mode}`);
    const sock = path.join(dir, 'sock');
    const server = net.createServer((c) => c.on('error', () => {}));
    if (mode === 'connect') await new Promise<void>((r) => server.listen(sock, r));
    try {
      // A listening socket needs a path of its own; a connecting one, the server's.
      const refSock = mode === 'connect' ? sock : path.join(tempDir(`sock-${mode}-ref`), 'sock');
      const ref = withoutPid(await undisturbed('sockrefuse', [mode, refSock, '600'], dir)).body;
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
