#!/usr/bin/env node
// Runs the ___SANDBOXED_JS_FOR_SERVER___ code of a server-side GTM tag template (.tpl) under
// Node, with the sandboxed APIs it requires implemented here, against real HTTP endpoints.
//
//   node tests/sgtm/harness.js TEMPLATE.tpl < run.json
//
// run.json: {"data": {template fields}, "event": {event data},
//            "requestHeaders": {"user-agent": "..."}, "debugMode": false, "timeoutMs": 15000}
//
// Prints one JSON object on stdout:
//   {"outcome": "success" | "failure" | "none", "requests": [{url, method, headers, body,
//    statusCode | error}], "logs": [[args of one logToConsole call], ...]}
// Exit status: 0 gtmOnSuccess, 1 gtmOnFailure, 2 the template broke a sandbox rule or threw,
// 3 neither callback was called before the timeout.
//
//   node tests/sgtm/harness.js TEMPLATE.tpl --tests
//
// runs the template's own ___TESTS___ scenarios instead (mock, runCode, assertApi, assertThat,
// callLater), prints {"scenarios": [{"name", "passed", "failures"}]} and exits 0 when all pass.
//
// Like the sGTM sandbox, require() only hands out an API whose permission the template's
// ___SERVER_PERMISSIONS___ declares (or one that needs none), and each API checks the
// permission's parameters (header allow-list, event data keys, URLs, logging environment).
// No npm packages: only Node's own modules.
'use strict';

const fs = require('fs');
const http = require('http');
const https = require('https');
const vm = require('vm');

class SandboxError extends Error {}

/** The template's sections, by name: {INFO: '...', SANDBOXED_JS_FOR_SERVER: '...', ...}. */
function sections(text) {
  const found = {};
  const marker = /^___([A-Z_]+)___\s*$/gm;
  const heads = [];
  let match;
  while ((match = marker.exec(text)) !== null) {
    heads.push({name: match[1], start: match.index, bodyStart: marker.lastIndex});
  }
  heads.forEach((head, i) => {
    const end = i + 1 < heads.length ? heads[i + 1].start : text.length;
    found[head.name] = text.slice(head.bodyStart, end).trim();
  });
  return found;
}

/** The sandbox value of one permission parameter (GTM's typed value encoding). */
function decodeValue(value) {
  if (!value) return undefined;
  switch (value.type) {
    case 1: return value.string;
    case 2: return (value.listItem || []).map(decodeValue);
    case 3: {
      const map = {};
      (value.mapKey || []).forEach((k, i) => { map[decodeValue(k)] = decodeValue(value.mapValue[i]); });
      return map;
    }
    case 8: return value.boolean;
    default: return value;
  }
}

/** publicId -> {param: value} for every permission the template declares. */
function permissions(json) {
  const declared = {};
  JSON.parse(json || '[]').forEach((entry) => {
    const params = {};
    (entry.instance.param || []).forEach((p) => { params[p.key] = decodeValue(p.value); });
    declared[entry.instance.key.publicId] = params;
  });
  return declared;
}

/** Which permission each sandboxed API needs; null: none. */
const API_PERMISSION = {
  getAllEventData: 'read_event_data',
  getEventData: 'read_event_data',
  sendHttpRequest: 'send_http',
  logToConsole: 'logging',
  getRequestHeader: 'read_request',
  JSON: null,
  Math: null,
  Object: null,
  Promise: null,
  getType: null,
  makeString: null,
  makeNumber: null,
  makeInteger: null,
  makeTableMap: null,
};

/** Server APIs the harness knows but does not implement, with the permission each needs. */
const UNIMPLEMENTED = {
  getCookieValues: 'get_cookies',
  setCookie: 'set_cookies',
  getRemoteAddress: 'read_request',
  getRequestBody: 'read_request',
  getRequestPath: 'read_request',
  getRequestQueryParameter: 'read_request',
  getRequestQueryParameters: 'read_request',
  getContainerVersion: 'read_container_data',
  runContainer: 'run_container',
  returnResponse: 'return_response',
  setResponseBody: 'access_response',
  setResponseHeader: 'access_response',
  setResponseStatus: 'access_response',
  sendPixelFromBrowser: 'send_pixel_from_browser',
  templateDataStorage: 'access_template_storage',
  Firestore: 'access_firestore',
  BigQuery: 'access_bigquery',
  getGoogleAuth: 'use_google_credentials',
  callLater: null,
  encodeUriComponent: null,
  generateRandom: null,
  getTimestampMillis: null,
  sha256: null,
  sha256Sync: null,
  toBase64: null,
  fromBase64: null,
};

function getType(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function copy(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

function lookup(object, keyPath) {
  if (object && Object.prototype.hasOwnProperty.call(object, keyPath)) return object[keyPath];
  let node = object;
  for (const part of String(keyPath).split('.')) {
    if (node === null || typeof node !== 'object') return undefined;
    node = node[part];
  }
  return node;
}

/** A URL pattern of the send_http permission: a prefix, '*' matching anything. */
function urlAllowed(url, patterns) {
  return patterns.some((pattern) => {
    const escaped = pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
    return new RegExp('^' + escaped.join('.*')).test(url);
  });
}

function httpRequest(url, options, body, record) {
  return new Promise((resolve, reject) => {
    let target;
    try {
      target = new URL(url);
    } catch (e) {
      record.error = 'failed';
      reject({reason: 'failed'});
      return;
    }
    const client = target.protocol === 'https:' ? https : http;
    const headers = Object.assign({}, options.headers || {});
    if (body !== undefined) headers['Content-Length'] = Buffer.byteLength(body);
    const req = client.request(target, {method: options.method || 'GET', headers: headers}, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        record.statusCode = res.statusCode;
        resolve({statusCode: res.statusCode, headers: res.headers,
                 body: Buffer.concat(chunks).toString('utf8')});
      });
    });
    if (options.timeout) {
      req.setTimeout(options.timeout, () => {
        record.error = 'timed_out';
        req.destroy();
        reject({reason: 'timed_out'});
      });
    }
    req.on('error', () => {
      if (!record.error) {
        record.error = 'failed';
        reject({reason: 'failed'});
      }
    });
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function buildApis(declared, run, state) {
  const event = run.event || {};
  const requestHeaders = {};
  Object.keys(run.requestHeaders || {}).forEach((k) => {
    requestHeaders[k.toLowerCase()] = run.requestHeaders[k];
  });

  function eventKeyAllowed(key) {
    const p = declared.read_event_data;
    if (p.eventDataAccess === 'any') return true;
    return (p.keyPatterns || []).some((pattern) =>
      pattern === key || (pattern.endsWith('.*') && key.startsWith(pattern.slice(0, -1))));
  }

  function sendHttpRequest(url, callbackOrOptions, optionsOrBody, maybeBody) {
    const p = declared.send_http;
    if (p.allowedUrls !== 'any' && !urlAllowed(url, p.urls || [])) {
      throw new SandboxError('send_http does not allow ' + url);
    }
    const callback = typeof callbackOrOptions === 'function' ? callbackOrOptions : null;
    const options = (callback ? optionsOrBody : callbackOrOptions) || {};
    const body = callback ? maybeBody : optionsOrBody;
    const record = {url: url, method: options.method || 'GET',
                    headers: Object.assign({}, options.headers || {}), body: body};
    state.requests.push(record);
    const promise = httpRequest(url, options, body, record);
    if (callback) {
      promise.then((r) => callback(r.statusCode, r.headers, r.body),
                   () => callback(0, {}, undefined));
      return undefined;
    }
    return promise;
  }

  return {
    getAllEventData: () => copy(event),
    getEventData: (keyPath) => {
      if (!eventKeyAllowed(String(keyPath))) {
        throw new SandboxError('read_event_data does not allow ' + keyPath);
      }
      return copy(lookup(event, keyPath));
    },
    getRequestHeader: (name) => {
      const p = declared.read_request;
      const lower = String(name).toLowerCase();
      const allowed = p.headerAccess === 'any' || (p.headersAllowed &&
        (p.headerWhitelist || []).some((h) => String(h.headerName).toLowerCase() === lower));
      if (!allowed) throw new SandboxError('read_request does not allow header ' + name);
      return requestHeaders[lower];
    },
    sendHttpRequest: sendHttpRequest,
    logToConsole: (...args) => {
      const env = declared.logging.environments;
      if (env === 'all' || (env === 'debug' && run.debugMode)) state.logs.push(copy(args));
    },
    JSON: {
      stringify: (value) => JSON.stringify(value),
      parse: (text) => { try { return JSON.parse(text); } catch (e) { return undefined; } },
    },
    Math: Math,
    Object: {keys: Object.keys, values: Object.values, entries: Object.entries,
             freeze: Object.freeze, delete: (o, k) => { delete o[k]; return o; }},
    Promise: {create: (resolver) => new Promise(resolver), all: (ps) => Promise.all(ps)},
    getType: getType,
    makeString: (value) => String(value),
    makeNumber: (value) => Number(value),
    makeInteger: (value) => Math.trunc(Number(value)),
    makeTableMap: (rows, keyColumn, valueColumn) => {
      if (!Array.isArray(rows)) return null;
      const map = {};
      rows.forEach((row) => { map[row[keyColumn]] = row[valueColumn]; });
      return map;
    },
  };
}

function main() {
  const templatePath = process.argv[2];
  if (!templatePath) {
    process.stderr.write('usage: node harness.js TEMPLATE.tpl < run.json\n');
    process.exit(2);
  }
  const run = JSON.parse(fs.readFileSync(0, 'utf8') || '{}');
  const parts = sections(fs.readFileSync(templatePath, 'utf8'));
  const code = parts.SANDBOXED_JS_FOR_SERVER;
  const state = {outcome: null, calls: [], requests: [], logs: [], error: null};
  let finished = false;

  function finish() {
    if (finished) return;
    finished = true;
    const outcome = state.error ? 'error' : (state.outcome || 'none');
    const report = {outcome: outcome, calls: state.calls, requests: state.requests,
                    logs: state.logs};
    if (state.error) report.error = state.error;
    process.stdout.write(JSON.stringify(report) + '\n');
    const codes = {success: 0, failure: 1, error: 2, none: 3};
    process.exitCode = codes[outcome];
    clearTimeout(timer);
  }
  function fail(err) {
    state.error = (err instanceof SandboxError ? 'sandbox: ' : '') + (err && err.message || err);
    finish();
  }

  if (!code) {
    fail(new SandboxError('no ___SANDBOXED_JS_FOR_SERVER___ section in ' + templatePath));
    return;
  }
  let declared;
  try {
    declared = permissions(parts.SERVER_PERMISSIONS);
  } catch (e) {
    fail(new SandboxError('___SERVER_PERMISSIONS___ is not valid JSON: ' + e.message));
    return;
  }
  const apis = buildApis(declared, run, state);
  function sandboxRequire(name) {
    const known = Object.prototype.hasOwnProperty.call(API_PERMISSION, name);
    if (!known && !Object.prototype.hasOwnProperty.call(UNIMPLEMENTED, name)) {
      throw new SandboxError("require('" + name + "'): not a server-side sandboxed API");
    }
    const permission = known ? API_PERMISSION[name] : UNIMPLEMENTED[name];
    if (permission && !declared[permission]) {
      throw new SandboxError("require('" + name + "') needs the '" + permission +
                             "' permission, which ___SERVER_PERMISSIONS___ does not declare");
    }
    if (!known) {
      throw new SandboxError("require('" + name + "'): the harness does not implement it yet");
    }
    return apis[name];
  }
  const data = Object.assign({}, run.data || {});
  const settle = (outcome) => () => {
    state.calls.push(outcome);
    if (state.outcome === null) state.outcome = outcome;
    // let a second, wrong call show up in `calls` before reporting
    setImmediate(finish);
  };
  data.gtmOnSuccess = settle('success');
  data.gtmOnFailure = settle('failure');

  const timer = setTimeout(finish, run.timeoutMs || 15000);
  process.on('unhandledRejection', (reason) => fail(reason));
  try {
    sandboxFunction(code, templatePath)(sandboxRequire, data);
  } catch (e) {
    fail(e);
  }
}

/**
 * The code as a function of (require, data) in a fresh global scope without the globals the
 * sandbox does not have: JSON, Math, Object and Promise must be require()d, as in sGTM.
 */
function sandboxFunction(code, filename) {
  const context = vm.createContext({});
  vm.runInContext('delete globalThis.JSON; delete globalThis.Math; delete globalThis.Promise;' +
                  'delete globalThis.console;', context);
  return vm.runInContext('(function (require, data) {\n' + code + '\n})', context,
                         {filename: filename});
}

/** The ___TESTS___ section: {scenarios: [{name, code}], setup}; the YAML subset GTM writes. */
function parseTests(text) {
  const lines = text.split('\n');
  const scenarios = [];
  let setup = '';
  let i = 0;
  function block(indent) {  // the lines of a '|-' block scalar, dedented
    const out = [];
    while (i < lines.length && (lines[i].trim() === '' || lines[i].startsWith(indent))) {
      out.push(lines[i].slice(indent.length));
      i++;
    }
    return out.join('\n').replace(/\s+$/, '');
  }
  function unquote(value) {
    const v = value.trim();
    return /^'.*'$/.test(v) ? v.slice(1, -1).replace(/''/g, "'") : v;
  }
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if ((m = /^- name: (.*)$/.exec(line))) {
      scenarios.push({name: unquote(m[1]), code: ''});
      i++;
    } else if (/^  code: \|-\s*$/.test(line)) {
      i++;
      scenarios[scenarios.length - 1].code = block('    ');
    } else if (/^setup: \|-\s*$/.test(line)) {
      i++;
      setup = block('  ');
    } else {
      i++;
    }
  }
  return {scenarios: scenarios, setup: setup};
}

function deepEqual(a, b) {
  if (a === b) return true;
  if (getType(a) !== getType(b) || a === null || typeof a !== 'object') return false;
  const ka = Object.keys(a).filter((k) => a[k] !== undefined);
  const kb = Object.keys(b).filter((k) => b[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => deepEqual(a[k], b[k]));
}

/** Runs one scenario: setup + code, with GTM's test APIs; resolves to the failures. */
function runScenario(templateCode, declared, setup, scenario, templatePath) {
  return new Promise((resolve) => {
    const failures = [];
    const mocks = {};
    const calls = {};
    const state = {requests: [], logs: []};
    const apis = buildApis(declared, {event: {}}, state);
    const record = (name, fn) => (...args) => {
      (calls[name] = calls[name] || []).push(args);
      return fn(...args);
    };
    const templateRequire = (name) => {
      if (!Object.prototype.hasOwnProperty.call(API_PERMISSION, name)) {
        throw new SandboxError("require('" + name + "'): not implemented by the harness");
      }
      const permission = API_PERMISSION[name];
      if (permission && !declared[permission]) {
        throw new SandboxError("require('" + name + "') needs '" + permission + "'");
      }
      if (mocks[name]) return record(name, (...args) => mocks[name](...args));
      return typeof apis[name] === 'function' ? record(name, apis[name]) : apis[name];
    };
    const expectThat = (actual) => {
      const check = (ok, what) => { if (!ok) failures.push(what); };
      const show = (v) => JSON.stringify(v);
      return {
        isEqualTo: (expected) => check(deepEqual(actual, expected),
                                       show(actual) + ' is not equal to ' + show(expected)),
        isNotEqualTo: (expected) => check(!deepEqual(actual, expected),
                                          show(actual) + ' is equal to ' + show(expected)),
        isUndefined: () => check(actual === undefined, show(actual) + ' is not undefined'),
        isDefined: () => check(actual !== undefined, 'value is undefined'),
        isTrue: () => check(actual === true, show(actual) + ' is not true'),
        isFalse: () => check(actual === false, show(actual) + ' is not false'),
      };
    };
    const testApis = {
      mock: (name, impl) => { mocks[name] = impl; },
      runCode: (data) => {
        const fields = Object.assign({}, data || {});
        fields.gtmOnSuccess = record('gtmOnSuccess', () => undefined);
        fields.gtmOnFailure = record('gtmOnFailure', () => undefined);
        return sandboxFunction(templateCode, templatePath)(templateRequire, fields);
      },
      assertApi: (name) => ({
        wasCalled: () => { if (!calls[name]) failures.push(name + ' was not called'); },
        wasNotCalled: () => { if (calls[name]) failures.push(name + ' was called'); },
        wasCalledWith: (...args) => {
          if (!(calls[name] || []).some((c) => deepEqual(c, args))) {
            failures.push(name + ' was not called with ' + JSON.stringify(args));
          }
        },
      }),
      assertThat: expectThat,
    };
    const testRequire = (name) => {
      if (name === 'callLater') return (fn) => { setTimeout(fn, 0); };
      return apis[name] !== undefined ? apis[name] : testRequire.missing(name);
    };
    testRequire.missing = (name) => {
      throw new SandboxError("test code: require('" + name + "') is not implemented");
    };
    const body = 'const mock = t.mock, runCode = t.runCode, assertApi = t.assertApi,' +
                 ' assertThat = t.assertThat;\n' + setup + '\n' + scenario.code;
    const onRejection = (reason) => failures.push('unhandled rejection: ' + show(reason));
    const show = (v) => (v && v.message) || JSON.stringify(v);
    process.on('unhandledRejection', onRejection);
    try {
      const context = vm.createContext({});
      vm.runInContext('delete globalThis.JSON; delete globalThis.Math;' +
                      'delete globalThis.Promise; delete globalThis.console;', context);
      vm.runInContext('(function (require, t) {\n' + body + '\n})', context,
                      {filename: templatePath + ' ___TESTS___'})(testRequire, testApis);
    } catch (e) {
      failures.push('threw: ' + show(e));
    }
    // callLater() callbacks run after the promise callbacks; give both time to run
    setTimeout(() => setTimeout(() => {
      process.removeListener('unhandledRejection', onRejection);
      resolve(failures);
    }, 10), 10);
  });
}

async function runTests(templatePath) {
  const parts = sections(fs.readFileSync(templatePath, 'utf8'));
  const declared = permissions(parts.SERVER_PERMISSIONS);
  const tests = parseTests(parts.TESTS || '');
  const results = [];
  for (const scenario of tests.scenarios) {
    const failures = await runScenario(parts.SANDBOXED_JS_FOR_SERVER, declared, tests.setup,
                                       scenario, templatePath);
    results.push({name: scenario.name, passed: failures.length === 0, failures: failures});
  }
  process.stdout.write(JSON.stringify({scenarios: results}) + '\n');
  process.exitCode = results.length && results.every((r) => r.passed) ? 0 : 1;
}

if (process.argv[3] === '--tests') {
  runTests(process.argv[2]);
} else {
  main();
}
