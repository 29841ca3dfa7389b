#!/usr/bin/env node
// A stand-in for `codex exec --json ... -`: reads the prompt from stdin, prints Codex's JSONL events.
'use strict';
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const argv = process.argv.slice(2);
if (argv[0] !== 'exec' || !argv.includes('--json') || argv[argv.length - 1] !== '-') { process.stderr.write('bad argv ' + JSON.stringify(argv) + '\n'); process.exit(2); }
let prompt = '';
process.stdin.on('data', (d) => { prompt += d; });
process.stdin.on('end', () => {
  out({ type: 'thread.started', thread_id: 'thread-1' });
  out({ type: 'turn.started' });
  if (prompt.startsWith('fail')) { out({ type: 'turn.failed', error: { message: 'model refused' } }); process.exit(1); }
  out({ type: 'item.started', item: { id: 'item_1', type: 'command_execution', command: 'bash -lc ls', status: 'in_progress' } });
  out({ type: 'item.completed', item: { id: 'item_1', type: 'command_execution', command: 'bash -lc ls', aggregated_output: 'a.txt\n', exit_code: 0, status: 'completed' } });
  out({ type: 'item.completed', item: { id: 'item_2', type: 'agent_message', text: 'codex says: ' + prompt.trim() } });
  out({ type: 'turn.completed', usage: { input_tokens: 7, cached_input_tokens: 0, output_tokens: 3 } });
});
