// Umbra's Open MCT plugin: the object tree (deployments, the fleet's agents
// and their telemetry points, the simulate form, the constellation place),
// a telemetry provider (history from the Console's API, real time from the
// feed in umbra-api.js) and the views Open MCT has no equivalent of: the
// deployments table, a deployment (battery plot, event log, plan versus
// actual, timeline picture), the simulate form and the constellation lanes.
/* global UmbraApi */
/* exported UmbraPlugin */
function UmbraPlugin(dictionary) {
  const NS = 'umbra';
  const FIELDS = dictionary.telemetry; // [{key, name, unit, format}]
  const EVENT_SAMPLES = dictionary.event_samples; // {battery_percent: [payload fields]}
  const DEPLOYMENT_FIELDS = FIELDS.filter((f) => f.key in EVENT_SAMPLES);

  const id = (key) => ({ namespace: NS, key });
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') node.className = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : String(c ?? ''));
    return node;
  };
  const ms = (iso) => (iso ? Date.parse(iso) : NaN);
  const browse = (...keys) =>
    (window.location.hash = '#/browse/' + ['root', ...keys].map((k) => NS + ':' + k).join('/'));

  // The spacecraft state an event carries (the dictionary says where), or null.
  function eventSample(ev) {
    const p = ev.payload || {};
    const out = {};
    let found = false;
    for (const [key, sources] of Object.entries(EVENT_SAMPLES)) {
      const src = sources.find((f) => typeof p[f] === 'number');
      out[key] = src === undefined ? null : p[src];
      found = found || src !== undefined;
    }
    return found ? out : null;
  }

  function telemetryObject(key, name, field, location) {
    const values = [
      { key: 'utc', source: 'utc', name: 'Received', format: 'utc', hints: { domain: 1 } },
      { key: 'sim', name: 'Spacecraft time', format: 'string' },
      {
        key: 'value',
        name: field.name + (field.unit ? ' (' + field.unit + ')' : ''),
        unit: field.unit,
        format: field.format === 'number' ? 'float' : 'string',
        hints: field.format === 'number' ? { range: 1 } : {}
      }
    ];
    return { identifier: id(key), name, type: 'umbra.telemetry', location, telemetry: { values } };
  }

  // ---- the object tree: keys are root, deployments, fleet, simulate,
  // constellation, dep~<id>, agent~<id>, tlm~agent~<id>~<field>, tlm~dep~<id>~<field>
  const objectProvider = {
    async get(identifier) {
      const key = identifier.key;
      const [kind, a, b, c] = key.split('~');
      if (key === 'root') {
        return {
          identifier,
          name: 'Umbra',
          type: 'folder',
          location: 'ROOT',
          composition: ['deployments', 'simulate', 'fleet', 'constellation'].map(id)
        };
      }
      if (key === 'deployments') {
        const list = (await UmbraApi.get('/api/ui/deployments')).deployments;
        return {
          identifier,
          name: 'Deployments',
          type: 'umbra.deployments',
          location: NS + ':root',
          composition: list.map((d) => id('dep~' + d.id))
        };
      }
      if (key === 'simulate') {
        return { identifier, name: 'Simulate a deployment', type: 'umbra.simulate', location: NS + ':root' };
      }
      if (key === 'constellation') {
        return { identifier, name: 'Constellation lanes', type: 'umbra.constellation', location: NS + ':root' };
      }
      if (key === 'fleet') {
        const agents = (await UmbraApi.get('/api/agents')).agents;
        return {
          identifier,
          name: 'Fleet',
          type: 'folder',
          location: NS + ':root',
          composition: agents.map((ag) => id('agent~' + ag.agent_id))
        };
      }
      if (kind === 'dep') {
        return {
          identifier,
          name: a,
          type: 'umbra.deployment',
          location: NS + ':deployments',
          composition: DEPLOYMENT_FIELDS.map((f) => id('tlm~dep~' + a + '~' + f.key))
        };
      }
      if (kind === 'agent') {
        return {
          identifier,
          name: a,
          type: 'folder',
          location: NS + ':fleet',
          composition: FIELDS.map((f) => id('tlm~agent~' + a + '~' + f.key))
        };
      }
      if (kind === 'tlm') {
        const field = FIELDS.find((f) => f.key === c);
        const where = a === 'dep' ? 'dep~' + b : 'agent~' + b;
        const label = a === 'dep' ? field.name + ' (from events)' : field.name;
        return telemetryObject(key, label, field, NS + ':' + where);
      }
      throw new Error('unknown Umbra object ' + key);
    },
    // the tree is the Console's: nothing here is saved, and saving changes nothing
    update: async () => true,
    create: async () => true
  };

  // ---- telemetry: history over the API, real time over the feed
  function parseTlm(domainObject) {
    const [, source, owner, field] = domainObject.identifier.key.split('~');
    return { source, owner, field };
  }

  const telemetryProvider = {
    supportsRequest: (o) => o.type === 'umbra.telemetry',
    supportsSubscribe: (o) => o.type === 'umbra.telemetry',
    async request(domainObject, options) {
      const { source, owner, field } = parseTlm(domainObject);
      const start = options && options.start;
      const end = options && options.end;
      let data;
      if (source === 'agent') {
        let q = '';
        if (start) q += '&start=' + encodeURIComponent(new Date(start).toISOString());
        if (end) q += '&end=' + encodeURIComponent(new Date(end).toISOString());
        const body = await UmbraApi.get(
          '/api/ui/agents/' + encodeURIComponent(owner) + '/telemetry?limit=5000' + q
        );
        data = body.samples.map((s) => ({ utc: ms(s.received_at), sim: s.timestamp, value: s[field] }));
      } else {
        const body = await UmbraApi.get('/api/ui/deployments/' + encodeURIComponent(owner) + '/samples');
        data = body.samples.map((s) => ({ utc: ms(s.received_at), sim: s.timestamp, value: s[field] }));
      }
      return data.filter(
        (d) => d.value !== null && d.value !== undefined && (!start || d.utc >= start) && (!end || d.utc <= end)
      );
    },
    subscribe(domainObject, callback) {
      const { source, owner, field } = parseTlm(domainObject);
      if (source === 'agent') {
        return UmbraApi.on('telemetry', (s) => {
          if (s.agent_id === owner && s[field] !== null && s[field] !== undefined) {
            callback({ utc: ms(s.received_at), sim: s.timestamp, value: s[field] });
          }
        });
      }
      return UmbraApi.on('event', (m) => {
        const s = m.deployment_id === owner && eventSample(m.event);
        if (s && s[field] !== null) callback({ utc: ms(m.received_at), sim: m.event.timestamp, value: s[field] });
      });
    }
  };

  // ---- views
  function view(key, name, type, build) {
    return {
      key,
      name,
      cssClass: 'icon-object',
      canView: (o) => o.type === type,
      priority: () => 1000,
      view(domainObject) {
        let cleanup = () => {};
        return {
          show(element) {
            const root = el('div', { class: 'umbra-view ' + key });
            element.append(root);
            cleanup = build(root, domainObject) || cleanup;
          },
          destroy() {
            cleanup();
          }
        };
      }
    };
  }

  function statusBadge(status) {
    return el('span', { class: 'umbra-status umbra-status-' + status }, status);
  }

  function errorLine(root, e) {
    root.append(el('p', { class: 'umbra-error' }, e.message || String(e)));
  }

  // The deployments table, live: statuses from the feed's deployment
  // messages, event counts from its events; a deployment it has not seen
  // reloads the table.
  function deploymentsTable(root) {
    const body = el('tbody');
    const rows = {};
    const table = el(
      'table',
      { class: 'umbra-table umbra-deployments' },
      el('thead', {}, el('tr', {}, ...['Deployment', 'Job', 'Satellite', 'Mode', 'Status', 'Events', 'Created', 'Updated'].map((h) => el('th', {}, h)))),
      body
    );
    const simulateLink = el('button', { class: 'umbra-open-simulate', onclick: () => browse('simulate') }, 'Simulate a deployment...');
    root.append(el('h2', {}, 'Deployments'), el('p', {}, simulateLink), table);
    let reloading = null;

    function render(d) {
      const tr = el(
        'tr',
        { class: 'umbra-deployment-row', 'data-id': d.id },
        el('td', {}, el('a', { href: '#', onclick: (e) => (e.preventDefault(), browse('deployments', 'dep~' + d.id)) }, d.id)),
        el('td', {}, d.job_name || ''),
        el('td', {}, d.satellite_id),
        el('td', {}, d.mode + (d.mode === 'simulated' ? ' x' + d.speed_multiplier : '')),
        el('td', { class: 'status' }, statusBadge(d.status)),
        el('td', { class: 'events' }, d.events_count),
        el('td', {}, d.created_at),
        el('td', { class: 'updated' }, d.updated_at)
      );
      rows[d.id] = { tr, d };
      return tr;
    }

    async function reload() {
      try {
        const list = (await UmbraApi.get('/api/ui/deployments')).deployments;
        body.replaceChildren(...list.map(render));
        if (!list.length) body.append(el('tr', {}, el('td', { colspan: 8 }, 'No deployments yet: simulate one.')));
      } catch (e) {
        errorLine(root, e);
      }
    }
    function reloadSoon() {
      if (!reloading) reloading = setTimeout(() => ((reloading = null), reload()), 300);
    }
    reload();
    const off = [
      UmbraApi.on('deployment', (d) => {
        const r = rows[d.id];
        if (!r) return reloadSoon();
        r.d.status = d.status;
        r.tr.querySelector('.status').replaceChildren(statusBadge(d.status));
        r.tr.querySelector('.updated').textContent = d.updated_at;
      }),
      UmbraApi.on('event', (m) => {
        if (!m.deployment_id) return;
        const r = rows[m.deployment_id];
        if (!r) return reloadSoon();
        r.d.events_count += 1;
        r.tr.querySelector('.events').textContent = r.d.events_count;
      }),
      UmbraApi.on('link', (state) => state === 'up' && reloadSoon())
    ];
    return () => off.forEach((f) => f());
  }

  // A small SVG plot of battery over spacecraft time: the plan's forecast
  // (dashed) and what the events report (points, added as they arrive).
  function batteryPlot(root) {
    const W = 640;
    const H = 180;
    const PAD = 30;
    const svgNS = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(svgNS, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('class', 'umbra-battery-plot');
    const caption = el('p', { class: 'umbra-caption' }, 'Battery % over spacecraft time: forecast (dashed), executed (points)');
    root.append(caption, svg);
    let t0 = null;
    let t1 = null;
    let forecast = [];
    const points = [];
    const seen = new Set();
    const line = (x1, y1, x2, y2, cls) => {
      const l = document.createElementNS(svgNS, 'line');
      Object.entries({ x1, y1, x2, y2, class: cls }).forEach(([k, v]) => l.setAttribute(k, v));
      return l;
    };
    const text = (x, y, s, cls) => {
      const t = document.createElementNS(svgNS, 'text');
      t.setAttribute('x', x);
      t.setAttribute('y', y);
      t.setAttribute('class', cls || 'umbra-axis');
      t.textContent = s;
      return t;
    };
    function draw() {
      const times = points.map((p) => p.t).concat(forecast.map((f) => f.t));
      if (!times.length) return;
      t0 = Math.min(...times);
      t1 = Math.max(t0 + 600e3, ...times);
      const x = (t) => PAD + ((t - t0) / (t1 - t0)) * (W - 2 * PAD);
      const y = (v) => H - PAD + 10 - (v / 100) * (H - PAD - 10);
      const parts = [line(PAD, y(0), W - PAD, y(0), 'umbra-axis-line'), line(PAD, y(0), PAD, y(100), 'umbra-axis-line')];
      for (const v of [0, 50, 100]) parts.push(text(2, y(v) + 4, v + '%'));
      const hours = (t1 - t0) / 3600e3;
      for (let h = 0; h <= hours; h += Math.max(1, Math.round(hours / 6))) parts.push(text(x(t0 + h * 3600e3) - 6, H - 4, '+' + h + ' h'));
      if (forecast.length) {
        const pl = document.createElementNS(svgNS, 'polyline');
        pl.setAttribute('points', forecast.map((f) => x(f.t).toFixed(1) + ',' + y(f.v).toFixed(1)).join(' '));
        pl.setAttribute('class', 'umbra-forecast');
        parts.push(pl);
      }
      for (const p of points) {
        const c = document.createElementNS(svgNS, 'circle');
        c.setAttribute('cx', x(p.t).toFixed(1));
        c.setAttribute('cy', y(p.v).toFixed(1));
        c.setAttribute('r', 3.5);
        c.setAttribute('class', 'umbra-battery-point');
        const title = document.createElementNS(svgNS, 'title');
        title.textContent = p.label;
        c.append(title);
        parts.push(c);
      }
      svg.replaceChildren(...parts);
    }
    return {
      load(body) {
        const start = ms(body.forecast.start);
        forecast = body.forecast.samples.map(([s, v]) => ({ t: start + s * 1000, v }));
        body.samples.forEach((s) => this.add(s.id, s.timestamp, s.battery_percent, s.type));
      },
      add(row, timestamp, value, type) {
        if (value === null || value === undefined || seen.has(row)) return;
        seen.add(row);
        points.push({ t: ms(timestamp), v: value, label: type + ' ' + timestamp + ': ' + value + '%' });
        points.sort((p, q) => p.t - q.t);
        draw();
      },
      redraw: draw
    };
  }

  // The event log: one row per event, filtered by type and step, one page
  // at a time (a huge log never comes down whole); the last page grows live.
  function eventLog(root, depId, onNewEvent) {
    const PAGE = 50;
    // lastRow: the newest event row the loaded page took into account; live
    // events that arrive while a page loads wait in `waiting` until it is in
    const state = { type: '', step: '', offset: 0, total: 0, rows: new Set(), lastRow: 0, loading: 0, waiting: [] };
    const typeSel = el('select', { class: 'umbra-filter-type', onchange: () => ((state.type = typeSel.value), load(0)) });
    const stepSel = el('select', { class: 'umbra-filter-step', onchange: () => ((state.step = stepSel.value), load(0)) });
    const info = el('span', { class: 'umbra-log-info' });
    const body = el('tbody');
    const pager = (label, to) => el('button', { class: 'umbra-page-' + label, onclick: () => load(to()) }, label);
    root.append(
      el('h3', {}, 'Event log'),
      el(
        'div',
        { class: 'umbra-log-controls' },
        'type ',
        typeSel,
        ' step ',
        stepSel,
        ' ',
        pager('first', () => 0),
        pager('prev', () => Math.max(0, state.offset - PAGE)),
        pager('next', () => Math.min(lastPage(), state.offset + PAGE)),
        pager('last', () => lastPage()),
        ' ',
        info
      ),
      el('table', { class: 'umbra-table umbra-log' }, el('thead', {}, el('tr', {}, ...['seq', 'spacecraft time', 'type', 'step', 'payload'].map((h) => el('th', {}, h)))), body)
    );
    const lastPage = () => Math.max(0, Math.floor((state.total - 1) / PAGE) * PAGE);
    const matches = (ev) => (!state.type || ev.type === state.type) && (!state.step || (state.step === '-' ? ev.step_id == null : ev.step_id === state.step));
    function options(sel, values, current, none) {
      sel.replaceChildren(el('option', { value: '' }, 'all'), ...(none ? [el('option', { value: '-' }, '(none)')] : []), ...values.map((v) => el('option', { value: v }, v)));
      sel.value = current;
    }
    function showInfo() {
      const shown = body.children.length;
      info.textContent = state.total ? 'events ' + (state.offset + 1) + '-' + (state.offset + shown) + ' of ' + state.total : 'no events';
      info.setAttribute('data-total', state.total);
    }
    function row(r) {
      const ev = r.event;
      state.rows.add(r.row);
      return el(
        'tr',
        { class: 'umbra-log-row', 'data-row': r.row, 'data-seq': ev.seq ?? '' },
        el('td', {}, ev.seq ?? ''),
        el('td', {}, ev.timestamp),
        el('td', { class: 'type' }, ev.type),
        el('td', { class: 'step' }, ev.step_id ?? ''),
        el('td', { class: 'payload' }, JSON.stringify(ev.payload || {}).slice(0, 160))
      );
    }
    async function load(offset) {
      const q = new URLSearchParams({ offset, limit: PAGE });
      if (state.type) q.set('type', state.type);
      if (state.step) q.set('step', state.step);
      state.loading += 1;
      try {
        const page = await UmbraApi.get('/api/ui/deployments/' + encodeURIComponent(depId) + '/log?' + q);
        state.offset = page.offset;
        state.total = page.total;
        state.lastRow = page.last_row;
        state.rows = new Set();
        body.replaceChildren(...page.rows.map(row));
        options(typeSel, page.types, state.type, false);
        options(stepSel, page.steps, state.step, true);
        showInfo();
      } finally {
        state.loading -= 1;
        if (!state.loading) state.waiting.splice(0).forEach(live);
      }
    }
    // a live event: counted if it matches and the page does not hold it
    // already; shown if the last page has room
    function live(m) {
      if (state.loading) return void state.waiting.push(m);
      if (m.row <= state.lastRow || state.rows.has(m.row) || !matches(m.event)) return;
      const onLast = state.offset === lastPage();
      state.total += 1;
      if (onLast && body.children.length < PAGE) body.append(row(m));
      if (![...typeSel.options].some((o) => o.value === m.event.type)) typeSel.append(el('option', { value: m.event.type }, m.event.type));
      showInfo();
      if (onNewEvent) onNewEvent(m);
    }
    return { load, live };
  }

  function planVersusActual(root, depId) {
    const out = el('div', { class: 'umbra-compare' });
    root.append(el('h3', {}, 'Plan versus actual'), out);
    return async function load() {
      const c = await UmbraApi.get('/api/ui/deployments/' + encodeURIComponent(depId) + '/compare');
      const s = c.summary;
      const brief = (e) => (e ? [e.timestamp ? e.timestamp.slice(11, 19) : '', e.type, e.step_id ?? ''] : ['', '', '']);
      out.replaceChildren(
        el('p', { class: 'umbra-compare-summary' }, (s.identical ? 'identical: ' : 'diverged: ') + s.matched + ' as predicted, ' + s.shifted + ' shifted, ' + s.missing + ' missing, ' + s.extra + ' extra'),
        el(
          'table',
          { class: 'umbra-table' },
          el('thead', {}, el('tr', {}, ...['', 'planned', 'predicted', 'step', 'actual', 'executed', 'step', 'why'].map((h) => el('th', {}, h)))),
          el('tbody', {}, ...c.rows.map((r) => el('tr', { class: 'umbra-mark-' + { '=': 'same', '~': 'shifted', '-': 'missing', '+': 'extra' }[r.mark] }, el('td', {}, r.mark), ...brief(r.predicted).map((v) => el('td', {}, v)), ...brief(r.executed).map((v) => el('td', {}, v)), el('td', {}, r.note))))
        )
      );
    };
  }

  function timelinePicture(root, depId) {
    const img = el('img', { class: 'umbra-timeline', alt: 'timeline of ' + depId });
    const button = el('button', { class: 'umbra-draw-timeline', onclick: () => draw() }, 'Draw the timeline');
    root.append(el('h3', {}, 'Timeline'), button, el('div', {}, img));
    async function draw() {
      button.disabled = true;
      try {
        const blob = await UmbraApi.blob('/api/ui/deployments/' + encodeURIComponent(depId) + '/timeline.png');
        if (img.src) URL.revokeObjectURL(img.src);
        img.src = URL.createObjectURL(blob);
      } catch (e) {
        errorLine(root, e);
      } finally {
        button.disabled = false;
      }
    }
    return () => img.src && URL.revokeObjectURL(img.src);
  }

  function deploymentView(root, domainObject) {
    const depId = domainObject.identifier.key.split('~')[1];
    const head = el('div', { class: 'umbra-deployment-head' });
    const plotBox = el('div', { class: 'umbra-section' });
    root.append(head, plotBox);
    const bp = batteryPlot(plotBox);
    const logBox = el('div', { class: 'umbra-section' });
    const cmpBox = el('div', { class: 'umbra-section' });
    const tlBox = el('div', { class: 'umbra-section' });
    root.append(logBox, cmpBox, tlBox);
    const compareLoad = planVersusActual(cmpBox, depId);
    const log = eventLog(logBox, depId);
    const freeTimeline = timelinePicture(tlBox, depId);

    async function summary() {
      const d = await UmbraApi.get('/api/deployments/' + encodeURIComponent(depId));
      head.replaceChildren(
        el('a', { class: 'umbra-back', href: '#', onclick: (e) => (e.preventDefault(), browse('deployments')) }, 'All deployments'),
        el('h2', {}, d.job_name || depId),
        el('p', {}, 'Deployment ', el('code', {}, depId), ' on satellite ', d.satellite_id, ' (', d.mode, ') ', statusBadge(d.status)),
        el('p', { class: 'umbra-counts' }, d.events_count + ' events, ' + d.steps_completed + ' of ' + d.steps_total + ' steps completed; last: ' + (d.last_event_type || '-'))
      );
      head.setAttribute('data-status', d.status);
      return d;
    }
    let refreshing = null;
    const refreshSoon = () => {
      if (!refreshing) refreshing = setTimeout(() => ((refreshing = null), summary().catch(() => {})), 250);
    };
    async function loadAll() {
      try {
        await summary();
        await log.load(0);
        bp.load(await UmbraApi.get('/api/ui/deployments/' + encodeURIComponent(depId) + '/samples'));
        await compareLoad();
      } catch (e) {
        head.replaceChildren(el('p', { class: 'umbra-error' }, e.status === 404 ? 'No deployment ' + depId + ' at this Console.' : e.message));
      }
    }
    loadAll();
    const off = [
      UmbraApi.on('event', (m) => {
        if (m.deployment_id !== depId) return;
        log.live(m);
        const s = eventSample(m.event);
        if (s) bp.add(m.row, m.event.timestamp, s.battery_percent, m.event.type);
        refreshSoon();
        if (m.event.type === 'job.completed' || m.event.type === 'job.failed') compareLoad().catch(() => {});
      }),
      UmbraApi.on('deployment', (d) => d.id === depId && refreshSoon())
    ];
    return () => {
      off.forEach((f) => f());
      freeTimeline();
    };
  }

  // Plan the demo's job (or any job pasted in) and deploy it simulated.
  function simulateForm(root) {
    const sat = el('input', { class: 'umbra-sim-satellite', value: '25544', size: 8 });
    const start = el('input', { class: 'umbra-sim-start', size: 22 });
    const speed = el('input', { class: 'umbra-sim-speed', value: '1000', size: 6 });
    const job = el('textarea', { class: 'umbra-sim-job', rows: 14, cols: 90 });
    const status = el('p', { class: 'umbra-sim-status' });
    const go = el('button', { class: 'umbra-sim-go', onclick: () => submit() }, 'Plan and simulate');
    root.append(
      el('h2', {}, 'Simulate a deployment'),
      el('p', {}, 'The Console plans the job and writes its predicted events, paced by the speed (simulated seconds per second; 0 = at once).'),
      el('p', {}, 'satellite ', sat, ' start ', start, ' speed ', speed, ' ', go),
      job,
      status
    );
    UmbraApi.get('/api/ui/jobs/demo')
      .then((d) => {
        sat.value = d.satellite_id;
        start.value = d.start;
        job.value = JSON.stringify(d.custom_job, null, 1);
      })
      .catch((e) => (status.textContent = e.message));
    async function submit() {
      go.disabled = true;
      status.textContent = 'planning...';
      try {
        const plan = await UmbraApi.post('/v1/plan', { satellite_id: sat.value.trim(), custom_job: JSON.parse(job.value), planning: start.value.trim() ? { start: start.value.trim() } : {} });
        const dep = await UmbraApi.post('/api/deployments', { plan_id: plan.id, mode: 'simulated', speed_multiplier: Number(speed.value) });
        status.textContent = 'deployment ' + dep.id + ' started';
        browse('deployments', 'dep~' + dep.id);
      } catch (e) {
        status.textContent = 'refused: ' + e.message;
      } finally {
        go.disabled = false;
      }
    }
  }

  // The constellation lanes: a parent deployment (umbra submit --fleet) as
  // one lane per child satellite, each with the steps it holds -- its own,
  // or one taken over from another satellite (marked with where it came
  // from); a step that left a lane stays there, struck through, saying where
  // it went. Reloaded when an event of one of its children arrives.
  function constellationLanes(root) {
    const pick = el('select', { class: 'umbra-lanes-parent' });
    const head = el('div', { class: 'umbra-lanes-head' });
    const lanes = el('div', { class: 'umbra-lanes' });
    root.append(el('h2', {}, 'Constellation lanes'), el('p', {}, 'Parent deployment: ', pick), head, lanes);
    let children = new Set();
    let loading = null;

    function chip(s, cls, note) {
      return el(
        'span',
        { class: 'umbra-lane-step umbra-step-' + cls, 'data-step': s.step_id, title: note || s.status },
        s.step_id,
        note ? el('small', {}, ' ' + note) : ''
      );
    }

    const label = (d) => d.id + ' ' + (d.job_name || '') + ' (' + d.status + ')';

    function holder(s) {
      if (s.completed_by) return s.completed_by.satellite_id;
      return s.owner || s.satellite;
    }

    async function show(parentId) {
      if (!parentId) return;
      try {
        const d = await UmbraApi.get('/api/deployments/' + encodeURIComponent(parentId));
        children = new Set(d.children.map((c) => c.deployment_id));
        const opt = [...pick.options].find((o) => o.value === parentId);
        if (opt) opt.textContent = label(d);
        head.replaceChildren(
          el('span', { class: 'umbra-lanes-status', 'data-status': d.status }, statusBadge(d.status)),
          ' ' + (d.job_name || '') + ': ' + d.steps_completed + ' of ' + d.steps_total + ' steps completed, ' + d.events_count + ' events'
        );
        lanes.replaceChildren(
          ...d.children.map((c) => {
            const sat = c.satellite_id;
            const chips = [];
            for (const s of d.steps) {
              const at = holder(s);
              if (at === sat) {
                chips.push(chip(s, s.status === 'failed_over' ? 'executing' : s.status, s.satellite !== sat ? 'from ' + s.satellite : ''));
              } else if (s.satellite === sat) {
                chips.push(chip(s, 'moved', 'to ' + at));
              }
            }
            return el(
              'div',
              { class: 'umbra-lane', 'data-satellite': sat, 'data-status': c.status },
              el('span', { class: 'umbra-lane-name' }, sat),
              statusBadge(c.status),
              el('span', { class: 'umbra-lane-steps' }, ...(chips.length ? chips : [el('em', {}, 'alternate only')]))
            );
          })
        );
      } catch (e) {
        errorLine(root, e);
      }
    }

    async function load() {
      try {
        const list = (await UmbraApi.get('/api/ui/deployments')).deployments.filter((d) => d.kind === 'parent');
        const keep = pick.value;
        pick.replaceChildren(...list.map((d) => el('option', { value: d.id }, label(d))));
        if (!list.length) {
          lanes.replaceChildren(el('p', { class: 'umbra-lanes-none' }, 'No constellation deployments yet: umbra submit --fleet FLEET.json [--mode simulated].'));
          return;
        }
        if (keep && list.some((d) => d.id === keep)) pick.value = keep;
        await show(pick.value);
      } catch (e) {
        errorLine(root, e);
      }
    }
    function soon() {
      if (!loading) loading = setTimeout(() => ((loading = null), show(pick.value)), 300);
    }
    pick.addEventListener('change', () => show(pick.value));
    load();
    const off = [
      UmbraApi.on('event', (m) => children.has(m.deployment_id) && soon()),
      UmbraApi.on('deployment', (d) => (children.has(d.id) || d.id === pick.value) && soon()),
      UmbraApi.on('link', (state) => state === 'up' && load())
    ];
    return () => off.forEach((f) => f());
  }

  return function install(openmct) {
    openmct.types.addType('umbra.deployments', { name: 'Umbra deployments', cssClass: 'icon-tabular-realtime', creatable: false });
    openmct.types.addType('umbra.deployment', { name: 'Umbra deployment', cssClass: 'icon-object', creatable: false });
    openmct.types.addType('umbra.telemetry', { name: 'Umbra telemetry point', cssClass: 'icon-telemetry', creatable: false });
    openmct.types.addType('umbra.simulate', { name: 'Simulate a deployment', cssClass: 'icon-plus', creatable: false });
    openmct.types.addType('umbra.constellation', { name: 'Constellation lanes', cssClass: 'icon-timeline', creatable: false });
    openmct.objects.addRoot(id('root'));
    openmct.objects.addProvider(NS, objectProvider);
    openmct.telemetry.addProvider(telemetryProvider);
    openmct.objectViews.addProvider(view('umbra.deployments-table', 'Deployments', 'umbra.deployments', deploymentsTable));
    openmct.objectViews.addProvider(view('umbra.deployment-view', 'Deployment', 'umbra.deployment', deploymentView));
    openmct.objectViews.addProvider(view('umbra.simulate-form', 'Simulate', 'umbra.simulate', simulateForm));
    openmct.objectViews.addProvider(view('umbra.constellation-lanes', 'Lanes', 'umbra.constellation', constellationLanes));
  };
}
