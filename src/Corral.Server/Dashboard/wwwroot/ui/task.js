// A task: its events as a conversation (live while it runs, replayed from the stored log once it has ended), its live
// process tree, what teardown killed, the resource receipt, the result, the raw transcript and the record.

import { ApiError, call, download, follow, json } from './api.js';
import { badge, between, bytes, elapsed, empty, facts, h, isActive, ms, shortId, tick, time, usd, visuallyHidden } from './dom.js';

const MAX_ITEMS = 3000; // conversation items kept on the page; the transcript has everything
const MAX_LINES = 5000; // output lines kept on the page, over all output blocks
const TRANSCRIPT_PREVIEW = 1 << 20;
const POLL_MS = 1000;

const FOUND_BY = {
  cgroup: 'listed in the tree’s cgroup',
  processGroup: 'in the tree’s session or process group',
  pipeHolder: 'held the tree’s output pipe',
  environmentTag: 'carried the tree’s CORRAL_TREE_ID',
  uid: 'ran as the task’s own uid',
};

export function renderTask(main, id, { setLive, setTitle }) {
  const control = new AbortController();
  const signal = control.signal;
  let record = null;
  let ledger = null;
  let ledgerAt = null;
  let pollTimer = null;
  let polling = false;
  let ended = false;
  let eventCount = 0;
  let dropped = 0;
  let lines = 0; // output lines on the page
  let lastOutput = null; // the open terminal block: {stream, pre}
  let transcriptLoaded = false;
  setTitle('Task ' + shortId(id));

  // --- Layout -------------------------------------------------------------------------------------------------------
  const statusHolder = h('span', { class: 'status-holder', role: 'status', 'aria-live': 'polite', 'aria-atomic': 'true' });
  const cancel = h('button', { type: 'button', class: 'danger', hidden: true, onclick: cancelTask }, 'Cancel task');
  const actionMessage = h('p', { class: 'small', role: 'status', 'aria-live': 'polite' });
  const factsHolder = h('div', { class: 'task-facts' });
  const head = h('header', { class: 'task-head card' },
    h('div', { class: 'task-title' },
      h('h1', {}, 'Task ', h('span', { class: 'mono id' }, id)),
      statusHolder,
      h('div', { class: 'spacer' }),
      cancel),
    actionMessage,
    factsHolder);

  const convList = h('ol', { class: 'conv', 'aria-label': 'Events' });
  const convScroll = h('div', { class: 'conv-scroll', tabindex: '0', 'aria-label': 'Conversation, scrollable' }, convList);
  const convState = h('p', { class: 'muted small' });
  const processesBox = h('div');
  const resultBox = h('div');
  const transcriptBox = h('div');
  const recordBox = h('div');

  const tabs = tabset([
    { key: 'conversation', label: 'Conversation', content: [convState, convScroll] },
    { key: 'processes', label: 'Processes', content: [processesBox] },
    { key: 'result', label: 'Result', content: [resultBox] },
    { key: 'transcript', label: 'Transcript', content: [transcriptBox] },
    { key: 'record', label: 'Record', content: [recordBox] },
  ], key => {
    if (key === 'transcript' && !transcriptLoaded) loadTranscript();
  });

  main.append(h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← Overview')), head, h('div', { class: 'card' }, tabs.list, tabs.panels));

  // --- The record ---------------------------------------------------------------------------------------------------
  function renderRecord() {
    if (!record) return;
    statusHolder.replaceChildren(visuallyHidden('Status: '), badge(record.status));
    cancel.hidden = !isActive(record.status);
    const r = record;
    const running = r.status === 'running';
    factsHolder.replaceChildren(facts([
      ['Agent', r.agent],
      ['Node', r.node],
      ['Created', time(r.createdAt)],
      ['Started', time(r.startedAt)],
      ['Ended', time(r.endedAt)],
      ['Waited', r.startedAt ? between(r.createdAt, r.startedAt) : r.status === 'queued' ? elapsed(r.createdAt) : null],
      ['Ran', r.durationMs != null ? ms(r.durationMs) : running ? elapsed(r.startedAt) : null],
      ['Cost', usd(r.costUsd)],
      ['Turns', r.result?.numTurns],
      ['Queue reason', r.queueReason],
      ['Uid', r.uid],
      ['Session', r.sessionId ? h('span', { class: 'mono' }, r.sessionId) : null, 'wide'],
      ['Workdir', r.workdir ? h('span', { class: 'mono' }, r.workdir) : null, 'wide'],
      ['Error', r.error ? [h('strong', {}, r.error.code), ': ', r.error.message] : null, 'wide'],
    ]));
    renderResult();
    renderProcesses();
    recordBox.replaceChildren(
      h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => saveText(JSON.stringify(record, null, 2), `${id}.json`) }, 'Download record')),
      h('pre', { class: 'code' }, JSON.stringify(record, null, 2)));
    setTitle(`Task ${shortId(id)} (${r.status})`);
  }

  async function cancelTask() {
    cancel.disabled = true;
    cancel.textContent = 'Cancelling…';
    try {
      const response = await call(`/v1/tasks/${encodeURIComponent(id)}/cancel`, { method: 'POST', signal });
      const body = await response.json();
      actionMessage.textContent = response.status === 202 ? 'Cancel requested: the agent is being stopped.' : 'The task has ended.';
      if (body.status) {
        record = body;
        renderRecord();
      }
    } catch (error) {
      if (!signal.aborted) actionMessage.textContent = 'Could not cancel: ' + error.message;
    } finally {
      cancel.disabled = false;
      cancel.textContent = 'Cancel task';
    }
  }

  // --- Conversation -------------------------------------------------------------------------------------------------
  // Events are drawn in batches (one layout and one scroll per batch): a replay of thousands is drawn at once.
  const pending = [];
  let flushTimer = null;
  const lineQueue = []; // output line elements, oldest first (some may have left the page with their block)
  let lineHead = 0;

  function receive(event) {
    pending.push(event);
    flushTimer ??= setTimeout(flush, 16);
  }

  function flush() {
    flushTimer = null;
    const stick = convScroll.scrollTop + convScroll.clientHeight >= convScroll.scrollHeight - 48;
    for (const event of pending.splice(0)) onEvent(event);
    trim();
    if (stick) convScroll.scrollTop = convScroll.scrollHeight;
    showState();
  }

  function trim() {
    while (convList.children.length > MAX_ITEMS) {
      const first = convList.firstElementChild;
      lines -= first.querySelectorAll('.line').length;
      first.remove();
      dropped++;
    }
    while (lines > MAX_LINES && lineHead < lineQueue.length) {
      const oldest = lineQueue[lineHead++];
      if (!oldest.isConnected) continue;
      const block = oldest.closest('li');
      oldest.remove();
      lines--;
      dropped++;
      if (!block.querySelector('.line')) block.remove();
    }
    if (lineHead > 4096) {
      lineQueue.splice(0, lineHead);
      lineHead = 0;
    }
  }

  function showState() {
    const hidden = dropped ? ` · the first ${dropped} are not shown here (see Transcript)` : '';
    convState.textContent = `${eventCount} event${eventCount === 1 ? '' : 's'}${hidden} · ${ended ? 'ended' : 'live'}`;
  }

  function add(element) {
    convList.append(element);
  }

  function item(kind, who, ...body) {
    lastOutput = null;
    return h('li', { class: `ev ev-${kind}` }, who ? h('div', { class: 'who' }, who) : null, ...body);
  }

  /** Output lines go into one terminal block until something else is said; stderr lines are marked (colour and label). */
  function outputLine(stream, text, fragment) {
    if (!lastOutput || !lastOutput.pre.isConnected) {
      const pre = h('pre', { class: 'term' });
      add(h('li', { class: 'ev ev-output' }, h('div', { class: 'who' }, 'Output ', h('span', { class: 'legend' }, '(', h('span', { class: 'err' }, 'stderr'), ' in this colour)')), pre));
      lastOutput = { pre, open: null };
    }
    // A fragment continues the line before it (a line longer than the limit arrives in pieces).
    let line = lastOutput.open && lastOutput.open.dataset.stream === stream ? lastOutput.open : null;
    if (!line) {
      line = lastOutput.pre.appendChild(h('span', { class: stream === 'stderr' ? 'line err' : 'line', dataset: { stream } }));
      if (stream === 'stderr') line.append(visuallyHidden('stderr: '));
      lines++;
      lineQueue.push(line);
    }
    line.append(text);
    if (fragment) {
      lastOutput.open = line;
    } else {
      line.append('\n');
      lastOutput.open = null;
    }
  }

  /** A tool's input on one line, e.g. {"command":"ls"}, cut to fit. */
  function preview(input) {
    const text = input === undefined || input === null ? 'no input' : JSON.stringify(input);
    return text.length > 140 ? text.slice(0, 139) + '…' : text;
  }

  function jsonBlock(value) {
    return h('pre', { class: 'code' }, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
  }

  function onEvent(event) {
    eventCount++;
    let d = null;
    try {
      d = event.data ? JSON.parse(event.data) : null;
    } catch {
      d = { text: event.data };
    }
    switch (event.name) {
      case 'task.status':
        add(item('status', null, h('span', {}, 'Status ', badge(d.status), d.at ? [' at ', time(d.at)] : null, d.queueReason ? ` · ${d.queueReason}` : '')));
        if (record && !record.endedAt && d.status) {
          record = { ...record, status: d.status, queueReason: d.queueReason ?? null, startedAt: d.status === 'running' ? (record.startedAt ?? d.at) : record.startedAt };
          renderRecord();
          if (isActive(d.status)) startPolling();
        }
        break;
      case 'agent.init':
        add(item('init', 'Agent started', facts([
          ['Model', d.model],
          ['Version', d.version],
          ['Working directory', d.cwd ? h('span', { class: 'mono' }, d.cwd) : null],
          ['Tools', d.tools?.length ? d.tools.join(', ') : null],
          ['MCP servers', d.mcp?.length ? d.mcp.map(m => `${m.name} (${m.status ?? '?'})`).join(', ') : null],
          ['Session', d.sessionId],
        ], 'facts inline')));
        break;
      case 'agent.text':
        add(item('text', 'Assistant', h('div', { class: 'text' }, d.text)));
        break;
      case 'agent.tool_use':
        add(item('tool', ['Tool call ', h('code', {}, d.name ?? '?')],
          h('details', {}, h('summary', {}, h('span', { class: 'mono' }, preview(d.input))), jsonBlock(d.input ?? null))));
        break;
      case 'agent.tool_result': {
        const preview = d.contentPreview ?? '';
        add(item(d.isError ? 'tool-result error' : 'tool-result', d.isError ? 'Tool error' : 'Tool result',
          h('details', { open: preview.length <= 400 }, h('summary', {}, `${preview.length} characters`), jsonBlock(preview))));
        break;
      }
      case 'agent.notice':
        add(item('notice', ['Notice ', h('code', {}, d.kind)], d.message ? h('div', {}, d.message) : null,
          d.data ? h('details', {}, h('summary', {}, 'Details'), jsonBlock(d.data)) : null));
        break;
      case 'agent.stderr':
        outputLine('stderr', d.text ?? '', false);
        break;
      case 'output':
        if (d.base64 !== undefined && d.text === undefined) outputLine(d.stream, `[${Math.floor(d.base64.length * 3 / 4)} bytes, not UTF-8]`, false);
        else outputLine(d.stream ?? 'stdout', d.text ?? '', !!d.fragment);
        break;
      case 'task.result':
        record = d;
        renderRecord();
        break;
      case 'task.end':
        add(item('end', null, h('span', {}, 'Ended ', badge(d.status), d.error ? ` · ${d.error.code}: ${d.error.message}` : '')));
        finish();
        break;
      default:
        add(item('notice', event.name, d ? jsonBlock(d) : null));
    }
  }

  async function finish() {
    ended = true;
    actionMessage.textContent = '';
    stopPolling();
    ledger = { running: false, processes: [] };
    setLive('ended');
    try {
      record = await json(`/v1/tasks/${encodeURIComponent(id)}`, { signal });
    } catch {
      // task.result had it
    }
    renderRecord();
    showState();
  }

  // --- Processes ----------------------------------------------------------------------------------------------------
  function startPolling() {
    if (polling || ended) return;
    polling = true;
    poll();
  }

  function stopPolling() {
    polling = false;
    clearTimeout(pollTimer);
  }

  async function poll() {
    if (!polling || signal.aborted) return;
    try {
      ledger = await json(`/v1/tasks/${encodeURIComponent(id)}/processes`, { signal });
      ledgerAt = new Date().toISOString();
      renderProcesses();
    } catch (error) {
      if (signal.aborted) return;
    }
    if (polling && !signal.aborted) pollTimer = setTimeout(poll, POLL_MS);
  }

  function treeRows(processes) {
    const byPid = new Map(processes.map(p => [p.pid, p]));
    const children = new Map();
    const roots = [];
    for (const p of processes) {
      if (p.parentPid !== p.pid && byPid.has(p.parentPid)) {
        if (!children.has(p.parentPid)) children.set(p.parentPid, []);
        children.get(p.parentPid).push(p);
      } else {
        roots.push(p);
      }
    }
    const rows = [];
    const seen = new Set();
    const walk = (p, depth, parent) => {
      if (seen.has(p.pid)) return;
      seen.add(p.pid);
      rows.push({ p, depth, parent });
      for (const child of (children.get(p.pid) ?? []).sort((a, b) => a.pid - b.pid)) walk(child, depth + 1, p);
    };
    for (const root of roots.sort((a, b) => a.pid - b.pid)) walk(root, 0, null);
    return rows;
  }

  function renderProcesses() {
    const parts = [];
    const processes = ledger?.processes ?? [];
    parts.push(h('h2', {}, 'Live process tree'));
    if (!record || isActive(record.status)) {
      parts.push(h('p', { class: 'muted small', role: 'status' }, record?.status === 'queued'
        ? 'The task is queued: nothing runs yet.'
        : ['Polling every second', ledgerAt ? [' · updated ', time(ledgerAt)] : '', ` · ${processes.length} process${processes.length === 1 ? '' : 'es'}`]));
    } else {
      parts.push(h('p', { class: 'muted small' }, 'The task has ended: nothing of its tree is alive. What teardown found is below.'));
    }
    if (processes.length) {
      const rows = treeRows(processes);
      parts.push(h('div', { class: 'scroll-x' }, h('table', { class: 'table tree', id: 'process-tree' },
        h('caption', { class: 'visually-hidden' }, 'Processes of the task, each under the process that spawned it'),
        h('thead', {}, h('tr', {}, ['PID', 'Command', 'State', 'RSS', 'CPU', 'Found by'].map(c => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows.map(({ p, depth, parent }) => h('tr', { dataset: { pid: p.pid, depth } },
          h('td', { class: 'mono' }, p.pid),
          h('td', { class: 'cmd' }, indent(depth), h('span', { class: 'mono' }, p.command),
            visuallyHidden(parent ? `, spawned by ${parent.pid}` : `, parent ${p.parentPid} outside the tree`),
            !parent ? h('span', { class: 'tag', title: `Its parent, PID ${p.parentPid}, is not in the tree` }, `parent ${p.parentPid}`) : null),
          h('td', {}, p.state),
          h('td', { class: 'num' }, bytes(p.rssBytes)),
          h('td', { class: 'num' }, ms(p.cpuMs)),
          h('td', { title: FOUND_BY[p.foundBy] ?? '' }, p.foundBy)))))));
    }

    const process = record?.process;
    parts.push(h('h2', {}, 'Teardown'));
    if (!process) {
      parts.push(empty(record && !isActive(record.status) ? 'The task had no process (it never started, or its start failed).' : 'Known once the task ends.'));
    } else {
      parts.push(facts([
        ['Containment', process.containment],
        ['Exit', process.reason === 'exited' ? `exit code ${process.exitCode}` : process.signal != null ? `signal ${process.signal} (${process.reason})` : process.reason],
        ['Shell status', process.shellExitCode],
        ['Drain after exit', ms(process.drainAfterExitMs)],
        ['Teardown', ms(process.teardownMs)],
        ['Holder survived', process.holderSurvived ? 'yes: a process kept the output pipe open' : 'no'],
        ['Output read', `${bytes(process.stdoutBytes)} stdout, ${bytes(process.stderrBytes)} stderr`],
      ]));
      const killed = process.killed ?? [];
      if (killed.length === 0) {
        parts.push(empty('Teardown killed nothing: the tree was empty when the direct child exited.'));
      } else {
        parts.push(h('div', { class: 'scroll-x' }, h('table', { class: 'table', id: 'killed' },
          h('caption', {}, `Killed by teardown (${killed.length})`),
          h('thead', {}, h('tr', {}, ['PID', 'Command', 'Found by', 'What'].map(c => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, killed.map(k => h('tr', {},
            h('td', { class: 'mono' }, k.pid),
            h('td', { class: 'mono cmd' }, k.command),
            h('td', {}, h('span', {}, k.foundBy), h('span', { class: 'muted small' }, ` — ${FOUND_BY[k.foundBy] ?? ''}`)),
            h('td', {}, k.pid === process.pid ? 'the direct child'
              : process.reason === 'exited' ? h('span', { class: 'tag warn', title: 'Still alive after the direct child exited by itself' }, 'outlived the child')
              : 'a descendant')))))));
      }

      const used = process.resources ?? {};
      const enforced = used.enforced ?? {};
      const unmeasured = 'not measured';
      parts.push(h('h2', {}, 'Resource receipt'));
      parts.push(facts([
        ['Memory peak', bytes(used.memoryPeakBytes) ?? unmeasured],
        ['CPU, user', ms(used.cpuUserMs) ?? unmeasured],
        ['CPU, system', ms(used.cpuSystemMs) ?? unmeasured],
        ['Processes at most', used.pidsPeak ?? unmeasured],
        ['OOM kills', used.oomKills ?? unmeasured],
        ['Limit hit', used.limitHit ?? 'none'],
        ['Limits in force', ['memory', 'pids', 'cpu'].filter(k => enforced[k]).join(', ') || 'none'],
      ]));
    }
    processesBox.replaceChildren(...parts);
  }

  function indent(depth) {
    if (depth === 0) return null;
    const span = h('span', { class: 'indent', 'aria-hidden': 'true' }, '└─ ');
    span.style.paddingLeft = `${(depth - 1) * 1.25}rem`;
    return span;
  }

  // --- Result -------------------------------------------------------------------------------------------------------
  function renderResult() {
    const r = record;
    const parts = [];
    if (isActive(r.status)) parts.push(empty('The task has not ended yet; its result appears here when it does.'));
    if (r.result) {
      parts.push(h('h2', {}, r.result.isError ? 'Result (an error)' : 'Result'));
      parts.push(h('div', { class: 'result-text' }, r.result.text || '(no text)'));
      parts.push(facts([
        ['Subtype', r.result.subtype],
        ['Turns', r.result.numTurns],
        ['Recovered', r.result.recovered ? 'yes: read back from the agent’s own transcript' : null],
        ['Terminal reason', r.result.terminalReason],
        ['API error status', r.result.apiErrorStatus],
      ]));
    }
    if (r.error) parts.push(h('p', { class: 'error' }, h('strong', {}, r.error.code), ': ', r.error.message));
    if (!isActive(r.status)) {
      parts.push(h('h2', {}, 'Cost and usage'));
      parts.push(facts([
        ['Cost', usd(r.costUsd) ?? 'not reported'],
        ['Duration', ms(r.durationMs)],
        ['Turns', r.result?.numTurns],
      ]));
      const usage = flatten(r.usage);
      if (usage.length) {
        parts.push(h('table', { class: 'table compact', id: 'usage' },
          h('caption', {}, 'Usage, as the agent reported it'),
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Counter'), h('th', { scope: 'col' }, 'Value'))),
          h('tbody', {}, usage.map(([k, v]) => h('tr', {}, h('th', { scope: 'row', class: 'mono' }, k), h('td', { class: 'num' }, v))))));
      }
    }
    if (r.output) {
      parts.push(h('h2', {}, 'Output'));
      parts.push(facts([
        ['Stored', bytes(r.output.storedBytes)],
        ['Not stored', r.output.droppedBytes ? `${bytes(r.output.droppedBytes)} (past the cap of ${bytes(r.output.maxBytes)})` : 'nothing'],
        ['Non-JSON lines', r.output.nonJsonLines || null],
      ]));
    }
    parts.push(h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => download(`/v1/tasks/${encodeURIComponent(id)}/output?stream=stdout`, `${id}.stdout`).catch(showError) }, 'Download stdout'),
      h('button', { type: 'button', onclick: () => download(`/v1/tasks/${encodeURIComponent(id)}/output?stream=stderr`, `${id}.stderr`).catch(showError) }, 'Download stderr')));
    resultBox.replaceChildren(...parts);
  }

  function flatten(value, prefix = '') {
    if (!value || typeof value !== 'object') return [];
    return Object.entries(value).flatMap(([key, v]) => v && typeof v === 'object' && !Array.isArray(v)
      ? flatten(v, `${prefix}${key}.`)
      : [[prefix + key, Array.isArray(v) ? JSON.stringify(v) : String(v)]]);
  }

  // --- Transcript ---------------------------------------------------------------------------------------------------
  async function loadTranscript() {
    transcriptLoaded = true;
    const status = h('p', { class: 'muted small', role: 'status' }, 'Loading…');
    const pre = h('pre', { class: 'code transcript', tabindex: '0', 'aria-label': 'Transcript, NDJSON' });
    transcriptBox.replaceChildren(
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => loadTranscript() }, 'Reload'),
        h('button', { type: 'button', onclick: () => download(`/v1/tasks/${encodeURIComponent(id)}/transcript`, `${id}.ndjson`).catch(showError) }, 'Download')),
      status, pre);
    try {
      const response = await call(`/v1/tasks/${encodeURIComponent(id)}/transcript`, { signal });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let text = '';
      let cut = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
        if (text.length > TRANSCRIPT_PREVIEW) {
          cut = true;
          text = text.slice(0, TRANSCRIPT_PREVIEW);
          await reader.cancel();
          break;
        }
      }
      const lines = text ? text.split('\n').filter(Boolean).length : 0;
      pre.textContent = text || '(empty)';
      status.textContent = cut ? `The first ${bytes(TRANSCRIPT_PREVIEW)} (${lines} lines); download it for the rest.` : `${lines} line${lines === 1 ? '' : 's'}, every line the agent printed.`;
    } catch (error) {
      if (!signal.aborted) status.textContent = 'Could not load the transcript: ' + error.message;
    }
  }

  function saveText(text, name) {
    const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
    const link = h('a', { href: url, download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  function showError(error) {
    actionMessage.textContent = error.message;
  }

  // --- Start --------------------------------------------------------------------------------------------------------
  let stream = null;
  json(`/v1/tasks/${encodeURIComponent(id)}`, { signal }).then(found => {
    record = found;
    renderRecord();
    if (isActive(record.status)) startPolling();
    stream = follow(`/v1/tasks/${encodeURIComponent(id)}/events`, {
      onEvent: receive,
      endEvent: 'task.end',
      onState: state => {
        if (!signal.aborted && !ended) setLive(state === 'closed' ? null : state);
      },
    });
  }).catch(error => {
    if (signal.aborted) return;
    main.replaceChildren(h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← Overview')),
      h('h1', {}, 'Task ', h('span', { class: 'mono' }, id)),
      h('p', { class: 'error', role: 'alert' }, error instanceof ApiError && error.status === 404 ? 'There is no such task (it may have been deleted).' : 'Could not load the task: ' + error.message));
  });
  const clock = setInterval(() => tick(main), 1000);

  return {
    dispose() {
      control.abort();
      stream?.close();
      stopPolling();
      clearTimeout(flushTimer);
      clearInterval(clock);
    },
  };
}

/** Accessible tabs: arrow keys, Home and End move between them; one tab stop for the list. */
function tabset(definitions, onShow) {
  const list = h('div', { role: 'tablist', 'aria-label': 'Task views', class: 'tabs' });
  const buttons = [];
  const panels = definitions.map((d, i) => h('section', {
    role: 'tabpanel', id: `panel-${d.key}`, 'aria-labelledby': `tab-${d.key}`, tabindex: '0', hidden: i !== 0, class: 'panel',
  }, ...d.content));
  const select = (index, focus) => {
    buttons.forEach((b, i) => {
      b.setAttribute('aria-selected', String(i === index));
      b.tabIndex = i === index ? 0 : -1;
      panels[i].hidden = i !== index;
    });
    if (focus) buttons[index].focus();
    onShow(definitions[index].key);
  };
  definitions.forEach((d, i) => {
    const button = h('button', { type: 'button', role: 'tab', id: `tab-${d.key}`, 'aria-controls': `panel-${d.key}`, 'aria-selected': String(i === 0), tabindex: i === 0 ? '0' : '-1' }, d.label);
    button.addEventListener('click', () => select(i, false));
    button.addEventListener('keydown', event => {
      const last = definitions.length - 1;
      const next = { ArrowRight: i === last ? 0 : i + 1, ArrowLeft: i === 0 ? last : i - 1, Home: 0, End: last }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      select(next, true);
    });
    buttons.push(button);
    list.append(button);
  });
  return { list, panels, select };
}
