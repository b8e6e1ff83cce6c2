#!/usr/bin/env node
import { packageVersion } from '../version.js';
import { runCli } from './program.js';

// The `imagestore` bin. Config from flags or IMAGESTORE_URL / IMAGESTORE_KEY / IMAGESTORE_MQTT_URL.
// exitCode rather than exit(): piped output is flushed before the process ends.
process.exitCode = await runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env }, packageVersion());
