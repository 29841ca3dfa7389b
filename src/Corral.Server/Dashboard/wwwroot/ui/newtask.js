// The "new task" form: the agents that can take a task now (from /readyz), what each needs, and the server's own
// field errors shown next to their fields.

import { ApiError, agents as listAgents, json } from './api.js';
import { h } from './dom.js';

// Where the server's field names (ProblemDetails errors[].field) are shown.
const FIELDS = {
  agent: 'n-agent',
  prompt: 'n-prompt',
  command: 'n-command',
  workdir: 'n-workdir',
  model: 'n-model',
  'limits.timeoutSeconds': 'n-timeout',
  'limits.maxTurns': 'n-turns',
  'limits.memoryMaxMb': 'n-memory',
  'limits.pidsMax': 'n-pids',
  'limits.cpuMax': 'n-cpu',
};

function field(id, label, input, help) {
  const helpId = help ? `${id}-help` : null;
  if (helpId) input.setAttribute('aria-describedby', helpId);
  return h('div', { class: 'field', dataset: { for: id } },
    h('label', { for: id }, label),
    input,
    help ? h('p', { id: helpId, class: 'help' }, help) : null,
    h('p', { id: `${id}-error`, class: 'error field-error', hidden: true }));
}

export function renderNewTask(main) {
  const control = new AbortController();
  const agentSelect = h('select', { id: 'n-agent', name: 'agent', required: true });
  const unavailable = h('p', { class: 'help' });
  const prompt = h('textarea', { id: 'n-prompt', name: 'prompt', rows: 5 });
  const command = h('textarea', { id: 'n-command', name: 'command', rows: 3, class: 'mono', spellcheck: 'false' });
  const split = h('input', { id: 'n-split', name: 'split', type: 'checkbox' });
  const model = h('input', { id: 'n-model', name: 'model', type: 'text', autocomplete: 'off' });
  const workdir = h('input', { id: 'n-workdir', name: 'workdir', type: 'text', autocomplete: 'off', spellcheck: 'false', class: 'mono' });
  const timeout = h('input', { id: 'n-timeout', name: 'timeout', type: 'number', min: '1', step: 'any', inputmode: 'decimal' });
  const turns = h('input', { id: 'n-turns', name: 'turns', type: 'number', min: '1', step: '1' });
  const memory = h('input', { id: 'n-memory', name: 'memory', type: 'number', min: '1', step: '1' });
  const pids = h('input', { id: 'n-pids', name: 'pids', type: 'number', min: '1', step: '1' });
  const cpu = h('input', { id: 'n-cpu', name: 'cpu', type: 'number', min: '0.01', step: 'any', inputmode: 'decimal' });
  const summary = h('div', { class: 'error-summary', role: 'alert', tabindex: '-1', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Start task');

  const commandFields = h('div', { class: 'stack' },
    field('n-command', 'Command', command, 'Run by bash -c, e.g. for i in $(seq 5); do echo $i; sleep 1; done'),
    h('div', { class: 'check' }, split, h('label', { for: 'n-split' }, 'Arguments, one per line, without a shell')));
  const promptField = field('n-prompt', 'Prompt', prompt, null);
  const promptLabel = promptField.querySelector('label');
  const modelField = field('n-model', 'Model', model, 'Empty: the agent’s default.');
  const turnsField = field('n-turns', 'Turns at most', turns, null);

  const form = h('form', { class: 'card form', 'aria-labelledby': 'new-title', novalidate: true },
    h('h1', { id: 'new-title' }, 'New task'),
    summary,
    field('n-agent', 'Agent', agentSelect, null),
    unavailable,
    commandFields,
    promptField,
    modelField,
    h('details', { class: 'options' },
      h('summary', {}, 'Working directory and limits'),
      h('div', { class: 'grid' },
        field('n-workdir', 'Working directory', workdir, 'Absolute and existing, or relative to the workspace root. Empty: a fresh directory.'),
        field('n-timeout', 'Timeout (seconds)', timeout, null),
        turnsField,
        field('n-memory', 'Memory (MiB)', memory, null),
        field('n-pids', 'Processes at most', pids, null),
        field('n-cpu', 'CPU (cores)', cpu, null))),
    h('div', { class: 'actions' }, submit));

  function showAgent() {
    const isCommand = agentSelect.value === 'command';
    commandFields.hidden = !isCommand;
    modelField.hidden = isCommand;
    turnsField.hidden = agentSelect.value !== 'claude-code';
    promptLabel.textContent = isCommand ? 'Standard input (optional)' : 'Prompt';
    prompt.required = !isCommand;
    command.required = isCommand;
  }

  function clearErrors() {
    summary.hidden = true;
    summary.replaceChildren();
    for (const element of form.querySelectorAll('.field-error')) {
      element.hidden = true;
      element.textContent = '';
    }
    for (const element of form.querySelectorAll('[aria-invalid]')) {
      element.removeAttribute('aria-invalid');
      const described = (element.getAttribute('aria-describedby') ?? '').split(' ').filter(x => x && !x.endsWith('-error'));
      if (described.length) element.setAttribute('aria-describedby', described.join(' '));
      else element.removeAttribute('aria-describedby');
    }
  }

  function showErrors(title, errors) {
    const items = [];
    for (const { field: name, message } of errors) {
      const id = FIELDS[name] ?? (name.startsWith('limits.') ? 'n-timeout' : null);
      const input = id ? document.getElementById(id) : null;
      if (input) {
        const error = document.getElementById(`${id}-error`);
        error.textContent = message;
        error.hidden = false;
        input.setAttribute('aria-invalid', 'true');
        input.setAttribute('aria-describedby', [input.getAttribute('aria-describedby'), `${id}-error`].filter(Boolean).join(' '));
        if (input.closest('details')) input.closest('details').open = true;
      }
      items.push(h('li', {}, input ? h('a', { href: `#${id}`, onclick: e => { e.preventDefault(); input.focus(); } }, `${name}: ${message}`) : `${name}: ${message}`));
    }
    summary.replaceChildren(h('p', {}, h('strong', {}, title)), items.length ? h('ul', {}, items) : null);
    summary.hidden = false;
    summary.focus();
  }

  function number(input) {
    return input.value.trim() === '' ? undefined : Number(input.value);
  }

  function body() {
    const task = { agent: agentSelect.value };
    if (task.agent === 'command') {
      const text = command.value;
      task.command = split.checked ? text.split('\n').map(s => s.replace(/\r$/, '')).filter(s => s.length) : ['bash', '-c', text];
      if (prompt.value) task.prompt = prompt.value;
    } else {
      task.prompt = prompt.value;
      if (model.value.trim()) task.model = model.value.trim();
    }
    if (workdir.value.trim()) task.workdir = workdir.value.trim();
    const limits = {
      timeoutSeconds: number(timeout),
      maxTurns: task.agent === 'claude-code' ? number(turns) : undefined,
      memoryMaxMb: number(memory),
      pidsMax: number(pids),
      cpuMax: number(cpu),
    };
    if (Object.values(limits).some(v => v !== undefined)) task.limits = Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined));
    return task;
  }

  form.addEventListener('submit', async event => {
    event.preventDefault();
    clearErrors();
    const missing = [];
    if (!agentSelect.value) missing.push({ field: 'agent', message: 'choose an agent.' });
    if (agentSelect.value === 'command' && !command.value.trim()) missing.push({ field: 'command', message: 'enter a command.' });
    if (agentSelect.value && agentSelect.value !== 'command' && !prompt.value.trim()) missing.push({ field: 'prompt', message: 'enter a prompt.' });
    if (missing.length) {
      showErrors('The task is not complete.', missing);
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Starting…';
    try {
      const record = await json('/v1/tasks', { method: 'POST', body: body(), signal: control.signal });
      location.hash = `#/tasks/${encodeURIComponent(record.id)}`;
    } catch (error) {
      if (control.signal.aborted) return;
      const problem = error instanceof ApiError ? error.problem : null;
      showErrors(problem?.title ? `${problem.title}: ${problem.detail ?? ''}` : error.message, problem?.errors ?? []);
    } finally {
      submit.disabled = false;
      submit.textContent = 'Start task';
    }
  });
  agentSelect.addEventListener('change', showAgent);

  main.append(form);
  listAgents().then(list => {
    const ready = list.filter(a => a.available);
    agentSelect.replaceChildren(...ready.map(a => h('option', { value: a.agent }, a.agent)));
    if (ready.length === 0) agentSelect.append(h('option', { value: '' }, 'No agent can take a task now'));
    const off = list.filter(a => !a.available);
    unavailable.textContent = off.length ? 'Not offered now: ' + off.map(a => `${a.agent} (${a.reason})`).join('; ') : '';
    unavailable.hidden = off.length === 0;
    showAgent();
  }).catch(error => {
    summary.textContent = 'Could not list the agents: ' + error.message;
    summary.hidden = false;
  });
  showAgent();

  return { dispose() { control.abort(); } };
}
