#!/usr/bin/env node
// A stand-in for `gemini --output-format stream-json --prompt=...`: prints Gemini CLI's stream-json events.
'use strict';
const out = (o) => process.stdout.write(JSON.stringify({ ...o, timestamp: new Date().toISOString() }) + '\n');
const argv = process.argv.slice(2);
const p = argv.find((a) => a.startsWith('--prompt='));
if (!argv.includes('stream-json') || !p) { process.stderr.write('bad argv ' + JSON.stringify(argv) + '\n'); process.exit(2); }
const prompt = p.slice('--prompt='.length);
out({ type: 'init', session_id: 'gem-1', model: 'gemini-fake' });
out({ type: 'message', role: 'user', content: prompt });
out({ type: 'tool_use', tool_name: 'read_file', tool_id: 't1', parameters: { path: 'a.txt' } });
out({ type: 'tool_result', tool_id: 't1', status: 'success', output: 'contents' });
out({ type: 'message', role: 'assistant', content: 'gemini says: ', delta: true });
out({ type: 'message', role: 'assistant', content: prompt, delta: true });
if (prompt.startsWith('fail')) { out({ type: 'result', status: 'error', error: { type: 'api', message: 'quota exceeded' }, stats: { total_tokens: 1 } }); process.exit(1); }
out({ type: 'result', status: 'success', stats: { total_tokens: 12, input_tokens: 8, output_tokens: 4, duration_ms: 33, tool_calls: 1 } });
