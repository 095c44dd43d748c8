/* capi-relay browser tag: first-party _fbc/_fbp cookies, events to the relay, Pixel dedup.
 * Served by the ingest function at /tag.js. No dependencies. API:
 *   capiRelay.track(eventName, params, options)   options: {event_id, user_data}
 *   capiRelay.push({event, ecommerce, user_data})  a dataLayer-shaped push, sent with the
 *     merged state of window.dataLayer (capiRelayConfig.dataLayerName), as GTM sees it
 *   capiRelay.consent({ad_storage, ad_user_data, ...: 'granted' | 'denied'})
 * Calls made before it loads wait in window.capiRelayQueue as [method, ...args] arrays.
 */
(function (w, d) {
  'use strict';
  if (w.capiRelay && w.capiRelay.loaded) return;

  var config = w.capiRelayConfig || {};
  var DAY_SECONDS = 86400;
  // GA4 names -> Meta standard events: the same table as the relay's mapping.EVENT_NAMES
  var EVENT_NAMES = {
    page_view: 'PageView', 'gtm.dom': 'PageView', 'gtm.js': 'PageView',
    view_item: 'ViewContent', add_to_cart: 'AddToCart', add_to_wishlist: 'AddToWishlist',
    begin_checkout: 'InitiateCheckout', add_payment_info: 'AddPaymentInfo',
    purchase: 'Purchase', search: 'Search', view_search_results: 'Search',
    generate_lead: 'Lead', sign_up: 'CompleteRegistration', contact: 'Contact',
    customize_product: 'CustomizeProduct', donate: 'Donate', find_location: 'FindLocation',
    schedule: 'Schedule', start_trial: 'StartTrial', submit_application: 'SubmitApplication',
    subscribe: 'Subscribe'
  };
  // compact platform names: the relay's mapping.PLATFORM_EVENT_NAMES
  var PLATFORM_EVENT_NAMES = {
    pageviewed: 'PageView', productviewed: 'ViewContent', productaddedtocart: 'AddToCart',
    checkoutstarted: 'InitiateCheckout', paymentinfosubmitted: 'AddPaymentInfo',
    checkoutcompleted: 'Purchase', searchsubmitted: 'Search', dlsubscribe: 'Lead',
    dlsignup: 'CompleteRegistration', dlsearchresults: 'Search', dluserdata: 'PageView',
    addtocart: 'AddToCart', productdetail: 'ViewContent', detail: 'ViewContent',
    productview: 'ViewContent', checkout: 'InitiateCheckout', transaction: 'Purchase',
    ordercompleted: 'Purchase', gtm4wpordercompletedeec: 'Purchase',
    gtm4wpaddproducttocarteec: 'AddToCart', gtm4wpchangedetailvieweec: 'ViewContent',
    gtm4wpcheckoutstepeec: 'InitiateCheckout', productadded: 'AddToCart',
    productsearched: 'Search', productssearched: 'Search', paymentinfoentered: 'AddPaymentInfo',
    signedup: 'CompleteRegistration', productaddedtowishlist: 'AddToWishlist'
  };
  var COMPACT_NAMES = {}, name;
  for (name in EVENT_NAMES) {
    COMPACT_NAMES[compact(name)] = COMPACT_NAMES[compact(EVENT_NAMES[name])] = EVENT_NAMES[name];
  }
  for (name in PLATFORM_EVENT_NAMES) COMPACT_NAMES[name] = PLATFORM_EVENT_NAMES[name];
  function compact(name) { return String(name).toLowerCase().replace(/[^a-z0-9]/g, ''); }
  function metaEventName(name) {
    if (EVENT_NAMES.hasOwnProperty(name)) return EVENT_NAMES[name];
    var key = compact(name);
    if (COMPACT_NAMES.hasOwnProperty(key)) return COMPACT_NAMES[key];
    if (key.length > 2 && key.slice(0, 2) === 'dl' && COMPACT_NAMES.hasOwnProperty(key.slice(2))) {
      return COMPACT_NAMES[key.slice(2)];
    }
    return name;
  }
  var STANDARD = {};
  for (var ga4 in EVENT_NAMES) STANDARD[EVENT_NAMES[ga4]] = true;
  var consentState = copy(config.consent);
  var model = {};  // the dataLayer's merged state

  function copy(obj) {
    var out = {};
    if (obj && typeof obj === 'object') for (var k in obj) out[k] = obj[k];
    return out;
  }

  // The ingest endpoint: configured, or the directory this script was loaded from.
  function endpoint() {
    if (config.endpoint) return config.endpoint;
    var script = d.currentScript || d.querySelector('script[src*="/tag.js"]');
    if (!script || !script.src) return null;
    var url = new URL(script.src, w.location.href);
    return url.origin + url.pathname.replace(/tag\.js$/, '');
  }
  var ENDPOINT = endpoint();

  function adDenied() {
    return consentState.ad_storage === 'denied' || consentState.ad_user_data === 'denied';
  }

  // -- cookies --------------------------------------------------------------------------
  function getCookie(name) {
    var parts = d.cookie ? d.cookie.split('; ') : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf('=');
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return null;
  }

  function writeCookie(name, value, domain, maxAge) {
    d.cookie = name + '=' + encodeURIComponent(value) + '; path=/; max-age=' + maxAge +
      (domain ? '; domain=' + domain : '') + '; SameSite=Lax' +
      (w.location.protocol === 'https:' ? '; Secure' : '');
  }

  // The registrable domain: the shortest parent domain the browser lets us set a cookie on.
  var siteDomain;
  function registrableDomain() {
    if (siteDomain !== undefined) return siteDomain;
    var host = w.location.hostname;
    siteDomain = '';  // host-only: IP addresses, localhost, or nothing accepted
    if (/^[\d.]+$/.test(host) || host.indexOf(':') >= 0 || host.indexOf('.') < 0) return siteDomain;
    var labels = host.split('.');
    for (var i = labels.length - 2; i >= 0; i--) {
      var candidate = labels.slice(i).join('.');
      writeCookie('_capi_probe', '1', candidate, 10);
      if (getCookie('_capi_probe') === '1') {
        writeCookie('_capi_probe', '', candidate, 0);
        return (siteDomain = candidate);
      }
    }
    return siteDomain;
  }

  function setClickCookies() {
    if (adDenied()) return;
    var maxAge = 90 * DAY_SECONDS;
    var fbclid = new URLSearchParams(w.location.search).get('fbclid');
    var fbc = getCookie('_fbc');
    if (fbclid && (!fbc || fbc.split('.').slice(3).join('.') !== fbclid)) {
      writeCookie('_fbc', 'fb.1.' + Date.now() + '.' + fbclid, registrableDomain(), maxAge);
    }
    if (!getCookie('_fbp')) {  // the Pixel makes it when it runs first; same format
      var random = 1000000000 + (randomUint32() % 9000000000);
      writeCookie('_fbp', 'fb.1.' + Date.now() + '.' + random, registrableDomain(), maxAge);
    }
  }

  // -- ids -------------------------------------------------------------------------------
  function randomUint32() {
    if (w.crypto && w.crypto.getRandomValues) {
      return w.crypto.getRandomValues(new Uint32Array(1))[0];
    }
    return Math.floor(Math.random() * 4294967296);
  }

  function newEventId() {
    if (w.crypto && typeof w.crypto.randomUUID === 'function') return w.crypto.randomUUID();
    var hex = '';
    for (var i = 0; i < 4; i++) hex += ('0000000' + randomUint32().toString(16)).slice(-8);
    return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-4' + hex.slice(13, 16) + '-' +
      ((parseInt(hex[16], 16) & 3) | 8).toString(16) + hex.slice(17, 20) + '-' + hex.slice(20);
  }

  // -- sending ---------------------------------------------------------------------------
  function send(event) {
    if (!ENDPOINT) return;
    var body = JSON.stringify(event);
    // text/plain needs no CORS preflight; the relay parses JSON whatever the content type
    try {
      if (navigator.sendBeacon &&
          navigator.sendBeacon(ENDPOINT, new Blob([body], {type: 'text/plain'}))) return;
    } catch (e) { /* fall through to fetch */ }
    if (w.fetch) {
      w.fetch(ENDPOINT, {method: 'POST', body: body, keepalive: true, credentials: 'include'})
        ['catch'](function () {});
    }
  }

  function pixelData(params) {
    var data = {};
    if (params.value !== undefined) data.value = params.value;
    if (params.currency) data.currency = params.currency;
    if (params.search_term) data.search_string = params.search_term;
    var items = params.items;
    if (items && items.length) {
      data.content_type = 'product';
      data.content_ids = [];
      data.contents = [];
      for (var i = 0; i < items.length; i++) {
        var id = items[i].item_id || items[i].id;
        data.content_ids.push(String(id));
        data.contents.push({id: String(id), quantity: Number(items[i].quantity || 1)});
      }
      data.num_items = items.length;
    }
    return data;
  }

  function track(eventName, params, options) {
    if (!eventName || adDenied()) return null;
    params = copy(params);
    options = options || {};
    setClickCookies();
    var eventId = options.event_id || options.eventID || newEventId();
    var userData = copy(params.user_data);
    var extra = options.user_data || {};
    for (var k in extra) userData[k] = extra[k];
    delete params.user_data;

    var event = params;
    event.event_name = eventName;
    event.event_id = eventId;
    event.event_time = Date.now();
    event.page_location = w.location.href;
    if (d.referrer) event.page_referrer = d.referrer;
    var fbp = getCookie('_fbp'), fbc = getCookie('_fbc');
    if (fbp) event._fbp = fbp;
    if (fbc) event._fbc = fbc;
    for (k in userData) { event.user_data = userData; break; }
    for (k in consentState) { event.consent = copy(consentState); break; }
    send(event);

    if (typeof w.fbq === 'function') {
      var metaName = metaEventName(eventName);
      w.fbq(STANDARD[metaName] ? 'track' : 'trackCustom', metaName,
            pixelData(options.pixel || params),
            {eventID: eventId});
    }
    return eventId;
  }

  // GTM's data model: pushes merged, objects and arrays recursively (google/data-layer-helper)
  function isPlainObject(value) {
    return !!value && Object.prototype.toString.call(value) === '[object Object]' &&
      Object.getPrototypeOf(value) === Object.prototype;
  }

  function merge(from, to) {
    for (var key in from) {
      if (!Object.prototype.hasOwnProperty.call(from, key)) continue;
      var value = from[key];
      if (Array.isArray(value)) {
        if (!Array.isArray(to[key])) to[key] = [];
        merge(value, to[key]);
      } else if (isPlainObject(value)) {
        if (!isPlainObject(to[key])) to[key] = {};
        merge(value, to[key]);
      } else {
        to[key] = value;
      }
    }
    return to;
  }

  function observe(entry) {
    if (isPlainObject(entry)) merge(entry, model);  // not gtag() Arguments
  }

  function watchDataLayer() {
    var name = config.dataLayerName || 'dataLayer';
    var layer = w[name] = w[name] || [];
    if (!Array.isArray(layer)) return;
    for (var i = 0; i < layer.length; i++) observe(layer[i]);
    var previous = layer.push;
    layer.push = function () {
      for (var j = 0; j < arguments.length; j++) observe(arguments[j]);
      return previous.apply(layer, arguments);
    };
  }

  // a dataLayer push {event, ecommerce, user_data, ...} on top of the merged dataLayer state
  function push(entry) {
    if (!entry || !entry.event) return null;
    var state = merge(entry, merge(model, {}));
    var params = {};
    for (var k in state) {
      if (k !== 'event' && k !== 'event_id' && k.indexOf('gtm.') !== 0) params[k] = state[k];
    }
    var pixel = merge(isPlainObject(state.ecommerce) ? state.ecommerce : {}, copy(params));
    return track(entry.event, params, {event_id: entry.event_id, pixel: pixel});
  }

  function consent(state) {
    for (var k in state || {}) consentState[k] = state[k];
    setClickCookies();
  }

  var api = {loaded: true, track: track, push: push, consent: consent};
  w.capiRelay = api;
  watchDataLayer();
  setClickCookies();

  var queue = w.capiRelayQueue || [];
  w.capiRelayQueue = {push: function (call) {
    if (call && typeof api[call[0]] === 'function') api[call[0]].apply(null, [].slice.call(call, 1));
  }};
  for (var i = 0; i < queue.length; i++) w.capiRelayQueue.push(queue[i]);
})(window, document);
