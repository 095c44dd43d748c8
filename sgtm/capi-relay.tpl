___TERMS_OF_SERVICE___

By creating or modifying this file you agree to Google Tag Manager's Community
Template Gallery Developer Terms of Service available at
https://developers.google.com/tag-manager/gallery-tos (or such other URL as
Google may provide), as modified from time to time.


___INFO___

{
  "type": "TAG",
  "id": "cvt_temp_public_id",
  "version": 1,
  "securityGroups": [],
  "displayName": "capi-relay: Meta Conversions API relay",
  "categories": [
    "ADVERTISING",
    "CONVERSIONS"
  ],
  "brand": {
    "id": "brand_dummy",
    "displayName": "capi-relay"
  },
  "description": "Forwards the event to your capi-relay ingest endpoint, which hashes, checks consent, enriches and delivers it to Meta's Conversions API. Succeeds only when the relay answers 2xx.",
  "containerContexts": [
    "SERVER"
  ]
}


___TEMPLATE_PARAMETERS___

[
  {
    "type": "TEXT",
    "name": "relayUrl",
    "displayName": "Relay ingest URL",
    "simpleValueType": true,
    "valueHint": "https://ingest-xxxxxxxx-ew.a.run.app",
    "help": "The URL of the relay's ingest function (terraform output <code>ingest_url</code>). The event is POSTed to it as JSON.",
    "valueValidators": [
      {
        "type": "NON_EMPTY"
      },
      {
        "type": "REGEX",
        "args": [
          "^https?://.+"
        ]
      }
    ]
  },
  {
    "type": "TEXT",
    "name": "relayKey",
    "displayName": "Relay key",
    "simpleValueType": true,
    "help": "Select a GTM variable that holds the relay's source key (do not paste the key here). When set, it is sent as <code>Authorization: Bearer &lt;key&gt;</code>. It is never logged."
  },
  {
    "type": "SIMPLE_TABLE",
    "name": "eventNames",
    "displayName": "Events to forward (empty: every event that fires the tag)",
    "simpleTableColumns": [
      {
        "defaultValue": "",
        "displayName": "Event name",
        "name": "eventName",
        "type": "TEXT",
        "isUnique": true,
        "valueHint": "purchase"
      }
    ],
    "newRowButtonText": "Add event",
    "help": "Event names as the client set them (GA4: purchase, generate_lead, ...). An event not in the list is not sent, and the tag still succeeds: skipping is intended, not a failure."
  },
  {
    "type": "RADIO",
    "name": "payload",
    "displayName": "What to send",
    "radioItems": [
      {
        "value": "all",
        "displayValue": "All event data (the client's event model, x-fb-* and x-ga-* keys included)"
      },
      {
        "value": "mapped",
        "displayValue": "A mapped subset"
      }
    ],
    "simpleValueType": true,
    "defaultValue": "all"
  },
  {
    "type": "GROUP",
    "name": "mappedGroup",
    "displayName": "Mapped subset",
    "groupStyle": "NO_ZIPPY",
    "enablingConditions": [
      {
        "paramName": "payload",
        "paramValue": "mapped",
        "type": "EQUALS"
      }
    ],
    "subParams": [
      {
        "type": "CHECKBOX",
        "name": "includeContext",
        "checkboxText": "Also send the request context from the event data: event_id, page_location, page_referrer, ip_override, user_agent, x-fb-ck-fbp, x-fb-ck-fbc",
        "simpleValueType": true,
        "defaultValue": true
      },
      {
        "type": "SIMPLE_TABLE",
        "name": "mappedParams",
        "displayName": "Parameters",
        "simpleTableColumns": [
          {
            "defaultValue": "",
            "displayName": "Name (a dot nests: user_data.email_address)",
            "name": "name",
            "type": "TEXT",
            "isUnique": true
          },
          {
            "defaultValue": "",
            "displayName": "Value",
            "name": "value",
            "type": "TEXT"
          }
        ],
        "newRowButtonText": "Add parameter",
        "help": "Sent besides event_name and the consent signals (x-ga-gcs, x-ga-gcd, consent_state, consent), which are always copied from the event data so that the relay's consent gate sees them. A row overrides a copied value; a row whose value is undefined is left out."
      }
    ]
  },
  {
    "type": "CHECKBOX",
    "name": "debug",
    "checkboxText": "Log each forwarded event's name and the relay's status (never the key or the event data)",
    "simpleValueType": true,
    "defaultValue": false
  }
]


___SANDBOXED_JS_FOR_SERVER___

// capi-relay server tag: POST the event to the relay's ingest endpoint as JSON.
const getAllEventData = require('getAllEventData');
const getEventData = require('getEventData');
const getRequestHeader = require('getRequestHeader');
const getType = require('getType');
const JSON = require('JSON');
const logToConsole = require('logToConsole');
const makeString = require('makeString');
const sendHttpRequest = require('sendHttpRequest');

const TIMEOUT_MS = 5000;
const CONSENT_KEYS = ['x-ga-gcs', 'x-ga-gcd', 'consent_state', 'consent'];
const CONTEXT_KEYS = ['event_id', 'page_location', 'page_referrer', 'ip_override',
                      'user_agent', 'x-fb-ck-fbp', 'x-fb-ck-fbc'];

const eventName = getEventData('event_name');

// Only the event name and a status are logged: no key, no event data, no response body.
function debugLog(status) {
  if (data.debug) {
    logToConsole('capi-relay tag: event ' + makeString(eventName) + ' -> ' + status);
  }
}

function isSet(value) {
  const type = getType(value);
  return type !== 'undefined' && type !== 'null' && value !== '';
}

function selected(name) {
  const rows = data.eventNames || [];
  if (rows.length === 0) return true;
  for (let i = 0; i < rows.length; i++) {
    if (rows[i] && makeString(rows[i].eventName).trim() === makeString(name)) return true;
  }
  return false;
}

// Sets body[a][b] for the name 'a.b', creating the objects on the way.
function setPath(body, name, value) {
  const parts = makeString(name).trim().split('.');
  let node = body;
  for (let i = 0; i < parts.length - 1; i++) {
    if (getType(node[parts[i]]) !== 'object') node[parts[i]] = {};
    node = node[parts[i]];
  }
  node[parts[parts.length - 1]] = value;
}

function copyKeys(body, keys) {
  keys.forEach((key) => {
    const value = getEventData(key);
    if (isSet(value)) body[key] = value;
  });
}

function buildBody() {
  if (data.payload !== 'mapped') return getAllEventData();
  const body = {event_name: eventName};
  copyKeys(body, CONSENT_KEYS);
  if (data.includeContext) copyKeys(body, CONTEXT_KEYS);
  (data.mappedParams || []).forEach((row) => {
    if (row && isSet(row.name) && getType(row.value) !== 'undefined') {
      setPath(body, row.name, row.value);
    }
  });
  return body;
}

if (!selected(eventName)) {
  debugLog('skipped (not in the events to forward)');
  data.gtmOnSuccess();
  return;
}

const body = buildBody();
if (!isSet(body.user_agent) && !(body.user_data && isSet(body.user_data.client_user_agent))) {
  const userAgent = getRequestHeader('user-agent');
  if (isSet(userAgent)) body.user_agent = userAgent;
}

const headers = {'Content-Type': 'application/json'};
const key = isSet(data.relayKey) ? makeString(data.relayKey).trim() : '';
if (key !== '') headers.Authorization = 'Bearer ' + key;

sendHttpRequest(data.relayUrl, {method: 'POST', headers: headers, timeout: TIMEOUT_MS},
                JSON.stringify(body))
  .then((result) => {
    debugLog('HTTP ' + result.statusCode);
    if (result.statusCode >= 200 && result.statusCode < 300) {
      data.gtmOnSuccess();
    } else {
      data.gtmOnFailure();
    }
  }, (error) => {
    debugLog('request ' + (error && error.reason ? error.reason : 'failed'));
    data.gtmOnFailure();
  });


___SERVER_PERMISSIONS___

[
  {
    "instance": {
      "key": {
        "publicId": "read_event_data",
        "versionId": "1"
      },
      "param": [
        {
          "key": "eventDataAccess",
          "value": {
            "type": 1,
            "string": "any"
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "read_request",
        "versionId": "1"
      },
      "param": [
        {
          "key": "headerWhitelist",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 3,
                "mapKey": [
                  {
                    "type": 1,
                    "string": "headerName"
                  }
                ],
                "mapValue": [
                  {
                    "type": 1,
                    "string": "user-agent"
                  }
                ]
              }
            ]
          }
        },
        {
          "key": "headersAllowed",
          "value": {
            "type": 8,
            "boolean": true
          }
        },
        {
          "key": "requestAccess",
          "value": {
            "type": 1,
            "string": "specific"
          }
        },
        {
          "key": "headerAccess",
          "value": {
            "type": 1,
            "string": "specific"
          }
        },
        {
          "key": "queryParameterAccess",
          "value": {
            "type": 1,
            "string": "any"
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "send_http",
        "versionId": "1"
      },
      "param": [
        {
          "key": "allowedUrls",
          "value": {
            "type": 1,
            "string": "any"
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "logging",
        "versionId": "1"
      },
      "param": [
        {
          "key": "environments",
          "value": {
            "type": 1,
            "string": "all"
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  }
]


___TESTS___

scenarios:
- name: Forwards all event data with the key as a bearer token and succeeds on 202
  code: |-
    runCode(mockData);
    assertApi('sendHttpRequest').wasCalled();
    assertThat(sentUrl).isEqualTo('https://relay.example.com');
    assertThat(sentOptions.method).isEqualTo('POST');
    assertThat(sentOptions.headers['Content-Type']).isEqualTo('application/json');
    assertThat(sentOptions.headers.Authorization).isEqualTo('Bearer source-key');
    assertThat(JSON.parse(sentBody)).isEqualTo(eventModel);
    callLater(() => {
      assertApi('gtmOnSuccess').wasCalled();
      assertApi('gtmOnFailure').wasNotCalled();
    });
- name: Sends no Authorization header without a key
  code: |-
    runCode({relayUrl: 'https://relay.example.com', relayKey: '', payload: 'all'});
    assertThat(sentOptions.headers.Authorization).isUndefined();
    callLater(() => assertApi('gtmOnSuccess').wasCalled());
- name: Fails when the relay answers 4xx
  code: |-
    status = 400;
    runCode(mockData);
    callLater(() => {
      assertApi('gtmOnFailure').wasCalled();
      assertApi('gtmOnSuccess').wasNotCalled();
    });
- name: Fails when the request fails
  code: |-
    status = 0;
    runCode(mockData);
    callLater(() => assertApi('gtmOnFailure').wasCalled());
- name: Skips an event that is not selected and still succeeds
  code: |-
    runCode({relayUrl: 'https://relay.example.com', payload: 'all',
             eventNames: [{eventName: 'generate_lead'}]});
    assertApi('sendHttpRequest').wasNotCalled();
    assertApi('gtmOnSuccess').wasCalled();
- name: Sends a mapped subset with event_name and the consent signals
  code: |-
    runCode({relayUrl: 'https://relay.example.com', payload: 'mapped', includeContext: false,
             mappedParams: [{name: 'user_data.email_address', value: 'jane@example.com'},
                            {name: 'value', value: 10}]});
    assertThat(JSON.parse(sentBody)).isEqualTo({
      event_name: 'purchase', 'x-ga-gcs': 'G111',
      user_data: {email_address: 'jane@example.com'}, value: 10});
    callLater(() => assertApi('gtmOnSuccess').wasCalled());
setup: |-
  const JSON = require('JSON');
  const Promise = require('Promise');
  const callLater = require('callLater');

  const eventModel = {
    event_name: 'purchase',
    page_location: 'https://shop.example.com/thanks',
    ip_override: '203.0.113.7',
    user_agent: 'Mozilla/5.0',
    'x-fb-ck-fbp': 'fb.1.1732450000000.1098115397',
    'x-ga-gcs': 'G111',
    value: 10,
    currency: 'EUR'
  };
  const mockData = {relayUrl: 'https://relay.example.com', relayKey: 'source-key',
                    payload: 'all', debug: true};

  // status 0 stands for a request that fails without an answer
  let status = 202;
  let sentUrl, sentOptions, sentBody;
  mock('getAllEventData', () => eventModel);
  mock('getEventData', (key) => eventModel[key]);
  mock('getRequestHeader', () => undefined);
  mock('sendHttpRequest', (url, options, body) => {
    sentUrl = url;
    sentOptions = options;
    sentBody = body;
    return Promise.create((resolve, reject) => {
      if (status === 0) reject({reason: 'failed'});
      else resolve({statusCode: status, headers: {}, body: '{}'});
    });
  });


___NOTES___

capi-relay server tag template. Source: sgtm/capi-relay.tpl in the capi-relay repository,
tested by tests/sgtm/harness.js against the relay's local stack.
