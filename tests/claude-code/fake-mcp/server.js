#!/usr/bin/env node
'use strict';
// Minimal MCP server over stdio (newline-delimited JSON-RPC 2.0), for tests.
//
// Tools:
//   echo  {text: string}  -> text content "echo: <text>"
//   pid   {}              -> text content "<pid>"
//
// Environment:
//   FAKE_MCP_PID_FILE    if set, write this process's pid there at start (and remove nothing on exit,
//                        so a test can check afterwards that the pid is gone).
//   FAKE_MCP_LOG_FILE    if set, append one line per received message / lifecycle event.
//   FAKE_MCP_IGNORE_EOF  if "1", keep running after stdin closes (simulates a server that leaks).
//   FAKE_MCP_INIT_DELAY_MS  delay the `initialize` answer (simulates a slow server start).

const fs = require('fs');

const pidFile = process.env.FAKE_MCP_PID_FILE;
const logFile = process.env.FAKE_MCP_LOG_FILE;
const ignoreEof = process.env.FAKE_MCP_IGNORE_EOF === '1';
const initDelayMs = parseInt(process.env.FAKE_MCP_INIT_DELAY_MS || '0', 10) || 0;

function log(what) {
  if (!logFile) return;
  try { fs.appendFileSync(logFile, `${new Date().toISOString()} ${process.pid} ${what}\n`); } catch { /* best effort */ }
}

if (pidFile) {
  fs.writeFileSync(pidFile + '.tmp', String(process.pid));
  fs.renameSync(pidFile + '.tmp', pidFile);
}
log('start');

function send(msg) {
  process.stdout.write(JSON.stringify(msg) + '\n');
}

const tools = [
  {
    name: 'echo',
    description: 'Echoes the given text back, prefixed with "echo: ".',
    inputSchema: {
      type: 'object',
      properties: { text: { type: 'string', description: 'Text to echo.' } },
      required: ['text'],
    },
  },
  {
    name: 'pid',
    description: 'Returns the process id of this MCP server.',
    inputSchema: { type: 'object', properties: {} },
  },
];

function handle(msg) {
  const { id, method, params } = msg;
  const isRequest = id !== undefined && id !== null;
  switch (method) {
    case 'initialize': {
      const reply = () => send({
        jsonrpc: '2.0',
        id,
        result: {
          protocolVersion: (params && params.protocolVersion) || '2025-06-18',
          capabilities: { tools: { listChanged: false } },
          serverInfo: { name: 'corral-fake-mcp', version: '1.0.0' },
        },
      });
      if (initDelayMs > 0) setTimeout(reply, initDelayMs); else reply();
      return;
    }
    case 'notifications/initialized':
    case 'notifications/cancelled':
      return;
    case 'ping':
      send({ jsonrpc: '2.0', id, result: {} });
      return;
    case 'tools/list':
      send({ jsonrpc: '2.0', id, result: { tools } });
      return;
    case 'tools/call': {
      const name = params && params.name;
      const args = (params && params.arguments) || {};
      if (name === 'echo') {
        send({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: `echo: ${args.text ?? ''}` }], isError: false } });
      } else if (name === 'pid') {
        send({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: String(process.pid) }], isError: false } });
      } else {
        send({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: `unknown tool: ${name}` }], isError: true } });
      }
      return;
    }
    case 'resources/list':
      send({ jsonrpc: '2.0', id, result: { resources: [] } });
      return;
    case 'prompts/list':
      send({ jsonrpc: '2.0', id, result: { prompts: [] } });
      return;
    default:
      if (isRequest) send({ jsonrpc: '2.0', id, error: { code: -32601, message: `Method not found: ${method}` } });
  }
}

let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  buf += chunk;
  let nl;
  while ((nl = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, nl).trim();
    buf = buf.slice(nl + 1);
    if (!line) continue;
    let msg;
    try { msg = JSON.parse(line); } catch { log('bad json'); continue; }
    log(`recv ${msg.method || 'response'}${msg.id !== undefined ? ' #' + msg.id : ''}`);
    try { handle(msg); } catch (e) { log(`error ${e && e.message}`); }
  }
});
process.stdin.on('end', () => {
  log('stdin eof');
  if (!ignoreEof) process.exit(0);
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    log(`signal ${sig}`);
    if (!ignoreEof) process.exit(0);
  });
}
if (ignoreEof) setInterval(() => {}, 1 << 30);
