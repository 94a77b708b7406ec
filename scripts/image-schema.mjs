#!/usr/bin/env node
// Compile the user backend's image schema (backends/user/images/*.proto)
// to one JSON file after tsc: the backend reads that at run time
// (backends/user/codec.ts) instead of parsing two dozen .proto files.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(root, 'backends', 'user', 'images');
const schema = new protobuf.Root().loadSync(fs.readdirSync(dir).filter((f) => f.endsWith('.proto')).sort().map((f) => path.join(dir, f)), { keepCase: true });
const out = path.join(root, 'dist', 'backends', 'user', 'images.json');
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, JSON.stringify(schema.toJSON()));
