#!/usr/bin/env node
// A stand-in for the Claude Code CLI in `-p --output-format stream-json --input-format stream-json` mode.
// It prints lines shaped like the real CLI's and picks its behaviour from the first word of the prompt.
'use strict';
const fs = require('fs');
const path = require('path');
const cp = require('child_process');
const readline = require('readline');

const argv = process.argv.slice(2);
const flag = (name) => { const a = argv.find((x) => x.startsWith(name + '=')); return a ? a.slice(name.length + 1) : null; };
const sessionId = flag('--session-id') || flag('--resume') || '00000000-0000-0000-0000-000000000000';
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let lastResultError = false;
let stdinEnded = false;
let onStdinEnd = () => {};
let onInterrupt = null;

if (!argv.includes('--verbose') || !argv.includes('-p')) {
  process.stderr.write('Error: When using --print, --output-format=stream-json requires --verbose\n');
  process.exit(1);
}

function init(extra) {
  out({
    type: 'system', subtype: 'init', cwd: process.cwd(), session_id: sessionId,
    tools: ['Bash', 'Read'], mcp_servers: [], model: 'fake-model', permissionMode: 'default',
    apiKeySource: 'none', claude_code_version: 'fake', uuid: 'u-init',
    fake_argv: argv, fake_env: { CLAUDECODE: process.env.CLAUDECODE ?? null, FOO: process.env.FOO ?? null, CORRAL_TREE_ID: process.env.CORRAL_TREE_ID ?? null },
    ...extra,
  });
}

function text(t, id = 'msg_1') {
  out({ type: 'assistant', message: { id, type: 'message', role: 'assistant', model: 'fake-model', content: [{ type: 'text', text: t }], stop_reason: null, usage: { input_tokens: 10, output_tokens: 2 } }, parent_tool_use_id: null, session_id: sessionId, uuid: 'u-' + id });
}

function result(r, extra = {}) {
  lastResultError = !!extra.is_error;
  // Key order as the real CLI: `type` is not first.
  out({ duration_api_ms: 5, type: 'result', subtype: 'success', is_error: false, result: r, duration_ms: 12, num_turns: 1, session_id: sessionId, total_cost_usd: 0.0123, usage: { input_tokens: 10, output_tokens: 5 }, modelUsage: { 'fake-model': { inputTokens: 10, outputTokens: 5, costUSD: 0.0123 } }, permission_denials: [], stop_reason: 'end_turn', terminal_reason: 'completed', uuid: 'u-result', ...extra });
}

function interruptible() {
  onInterrupt = (req) => {
    out({ type: 'control_response', response: { subtype: 'success', request_id: req.request_id, response: {} } });
    out({ type: 'user', message: { role: 'user', content: [{ type: 'text', text: '[Request interrupted by user]' }] }, parent_tool_use_id: null, session_id: sessionId, uuid: 'u-int' });
    result(undefined, { subtype: 'error_during_execution', is_error: true, result: undefined, errors: ['Request was aborted.'], terminal_reason: 'aborted_streaming', total_cost_usd: 0.005 });
    exitAfterStdin();
  };
}

// Like the real CLI: after the result, exit once stdin closes; 1 if the last result was an error.
function exitAfterStdin(code) {
  const finish = () => process.exit(code ?? (lastResultError ? 1 : 0));
  if (stdinEnded) finish(); else onStdinEnd = finish;
}

function spawnEscapee(holdStdout) {
  const child = cp.spawn('setsid', ['sleep', '300'], { stdio: ['ignore', holdStdout ? 'inherit' : 'ignore', holdStdout ? 'inherit' : 'ignore'] });
  child.unref();
  return child.pid;
}

async function run(prompt) {
  const [scenario, arg] = prompt.trim().split(/\s+/)[0].split(':');
  init();
  switch (scenario) {
    case 'hello':
      text('hello from fake');
      result('hello back');
      return exitAfterStdin();
    case 'tool':
      out({ type: 'assistant', message: { id: 'msg_t', role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { command: 'ls' } }], usage: {} }, session_id: sessionId });
      out({ type: 'user', message: { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'a.txt\nb.txt' }], is_error: false }] }, session_id: sessionId, tool_use_result: 'a.txt\nb.txt' });
      text('two files', 'msg_2');
      result('two files');
      return exitAfterStdin();
    case 'deep': {
      // A tool input and a usage nested `arg` levels deep (the CLI prints whatever the model and the API send).
      let deep = {};
      for (let i = 0; i < Number(arg); i++) deep = { d: deep };
      out({ type: 'assistant', message: { id: 'msg_t', role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'Bash', input: deep }], usage: {} }, session_id: sessionId });
      result('deep done', { usage: { input_tokens: 1, deep } });
      return exitAfterStdin();
    }
    case 'exit':
      result('done before exit ' + arg);
      return process.exit(Number(arg));
    case 'garbage':
      process.stdout.write('[SandboxDebug] not json\n');
      process.stdout.write('{ broken json\n');
      out({ type: 'mystery_type', x: 1 });
      out({ type: 'system', subtype: 'api_retry', attempt: 1, max_retries: 3, retry_delay_ms: 10, error_status: 529, error: 'overloaded' });
      text('still fine');
      result('fine');
      return exitAfterStdin();
    case 'big': {
      const size = 16 * 1024 * 1024;
      text('x'.repeat(size), 'msg_big');
      result('big done');
      return exitAfterStdin();
    }
    case 'escapee': {
      const pid = spawnEscapee(true);
      fs.writeFileSync('escapee.pid', String(pid));
      text('left something behind');
      result('escaped');
      return exitAfterStdin();
    }
    case 'noresult':
      text('about to vanish');
      return process.exit(0);
    case 'recover':
    case 'recoverbad': {
      const dir = path.join(process.env.HOME, '.claude', 'projects', process.cwd().replace(/[^A-Za-z0-9]/g, '-'));
      fs.mkdirSync(dir, { recursive: true });
      const lines = [
        { type: 'user', message: { role: 'user', content: prompt }, sessionId },
        { type: 'assistant', message: { id: 'msg_r', role: 'assistant', content: [{ type: 'text', text: 'recovered ' }], stop_reason: scenario === 'recover' ? 'end_turn' : 'tool_use', usage: { output_tokens: 3 } }, sessionId },
        { type: 'assistant', message: { id: 'msg_r', role: 'assistant', content: [{ type: 'text', text: 'answer' }], stop_reason: scenario === 'recover' ? 'end_turn' : 'tool_use', usage: { output_tokens: 3 } }, sessionId },
      ];
      fs.writeFileSync(path.join(dir, sessionId + '.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
      text('recovered answer', 'msg_r');
      return process.exit(0);
    }
    case 'plant': {
      // What a hostile agent may leave where its transcript goes (plant:link TARGET, plant:hardlink TARGET,
      // plant:fifo, plant:sparse: a terabyte of nothing), then no result: the host looks for one in the transcript.
      const dir = path.join(process.env.HOME, '.claude', 'projects', process.cwd().replace(/[^A-Za-z0-9]/g, '-'));
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, sessionId + '.jsonl');
      const target = prompt.trim().split(/\s+/)[1];
      if (arg === 'link') fs.symlinkSync(target, file);
      else if (arg === 'hardlink') fs.linkSync(target, file);
      else if (arg === 'sparse') { fs.writeFileSync(file, ''); fs.truncateSync(file, 2 ** 40); }
      else cp.execFileSync('mkfifo', [file]);
      text('planted');
      return process.exit(0);
    }
    case 'claim': {
      // Writes a transcript for the session it names (its own without one) and reports that id as its own.
      const id = arg || sessionId;
      const dir = path.join(process.env.HOME, '.claude', 'projects', process.cwd().replace(/[^A-Za-z0-9]/g, '-'));
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, id + '.jsonl'), JSON.stringify({ type: 'user', message: { role: 'user', content: 'written by ' + sessionId }, sessionId: id }) + '\n');
      result('claimed', { session_id: id });
      return exitAfterStdin();
    }
    case 'apierror':
      out({ type: 'assistant', message: { id: 'msg_e', model: '<synthetic>', role: 'assistant', content: [{ type: 'text', text: 'API Error: 529 Overloaded' }] }, error: 'overloaded', is_api_error_message: true, api_error_status: 529, session_id: sessionId });
      result('API Error: 529 Overloaded', { is_error: true, api_error_status: 529, terminal_reason: 'api_error', total_cost_usd: 0 });
      return exitAfterStdin();
    case 'maxturns':
      result(undefined, { subtype: 'error_max_turns', is_error: true, result: undefined, errors: ['Reached maximum number of turns (1)'], terminal_reason: 'max_turns' });
      return exitAfterStdin();
    case 'slow':
      interruptible();
      for (let i = 0; ; i++) { text('tick ' + i, 'msg_' + i); await sleep(100); }
    case 'silent':
      interruptible();
      return;
    case 'sleep':
      interruptible();
      await sleep(Number(arg));
      if (onInterrupt === null) return;
      text('slept');
      result('slept ' + arg);
      onInterrupt = null;
      return exitAfterStdin();
    case 'stubborn':
      process.on('SIGTERM', () => {});
      process.on('SIGINT', () => {});
      onStdinEnd = () => {};
      setInterval(() => {}, 1000);
      return;
    case 'hang': {
      const pid = spawnEscapee(false);
      fs.writeFileSync('pids.txt', process.pid + ' ' + pid);
      text('hanging');
      setInterval(() => {}, 1000);
      return;
    }
    case 'env':
      result(JSON.stringify({ CLAUDECODE: process.env.CLAUDECODE ?? null, FOO: process.env.FOO ?? null }));
      return exitAfterStdin();
    case 'secret':
      // Echoes its secret everywhere it can: text, a tool input, stderr, the result.
      text('the key is ' + process.env.MY_SECRET);
      process.stderr.write('stderr has ' + process.env.MY_SECRET + '\n');
      result('result has ' + process.env.MY_SECRET);
      return exitAfterStdin();
    case 'stderr':
      for (let i = 0; i < 3; i++) process.stderr.write('warning ' + i + '\n');
      result('with stderr');
      return exitAfterStdin();
    default:
      result('unknown scenario ' + scenario, { is_error: true });
      return exitAfterStdin();
  }
}

let first = true;
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  const msg = JSON.parse(line);
  if (first) {
    first = false;
    if (msg.type !== 'user' || typeof msg.message?.content !== 'string') { process.stderr.write('expected a user message first\n'); process.exit(2); }
    run(msg.message.content).catch((e) => { process.stderr.write(String(e) + '\n'); process.exit(3); });
  } else if (msg.type === 'control_request' && msg.request?.subtype === 'interrupt' && onInterrupt) {
    const handler = onInterrupt;
    onInterrupt = null;
    handler(msg);
  }
});
rl.on('close', () => { stdinEnded = true; onStdinEnd(); });
