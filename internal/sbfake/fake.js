'use strict';
// A fake Azure Service Bus namespace for tests: an AMQP 1.0 peer (on the npm package rhea 3.0.5) that the real
// azservicebus Go client talks to, plus an HTTP control API that tests use to create entities, register SAS keys,
// read counters and dead-lettered or completed messages, and install a completion hook. It is a test double: it keeps
// everything in memory, has no TLS, and implements only what the dispatcher's tests need. See doc.go.
//
// Environment:
//   SBFAKE_HOST                  address to listen on (default 127.0.0.1)
//   SBFAKE_AMQP_PORT             AMQP port (default 0: any free port)
//   SBFAKE_CONTROL_PORT          HTTP control port (default 0: any free port)
//   SBFAKE_EXIT_ON_STDIN_EOF=1   exit when standard input closes (the Go test that started it died)
//   SBFAKE_VERBOSE=1             log every delivery and settlement
// Once both ports listen it prints one line, {"amqpPort":N,"controlPort":M}, to standard output.

const crypto = require('crypto');
const http = require('http');
const rhea = require('rhea');

const T = rhea.types;
const M = rhea.message;

const HOST = process.env.SBFAKE_HOST || '127.0.0.1';
const DEFAULT_LOCK_MS = 30000;
const DEFAULT_MAX_DELIVERY = 10;
const HOOK_TIMEOUT_MS = 10000;
const LOCK_LOST_TEXT = 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.';
const VERBOSE = process.env.SBFAKE_VERBOSE === '1';

const log = (...args) => console.log(new Date().toISOString(), ...args);
const debug = (...args) => { if (VERBOSE) log(...args); };

// rhea hands the application decoded messages only. Keeping the encoded bytes as well lets the fake store each
// message's sections as typed AMQP values and send them on unchanged (an int64 property stays an int64, a timestamp a
// timestamp), which a round trip through JavaScript values would not.
const decodeMessage = M.decode;
M.decode = (buffer) => {
  const msg = decodeMessage(buffer);
  Object.defineProperty(msg, 'raw', { value: Buffer.from(buffer), enumerable: false });
  return msg;
};

// ---------------------------------------------------------------------------------------------------------------
// AMQP value helpers.

const SECTION = { header: 0x70, deliveryAnnotations: 0x71, annotations: 0x72, properties: 0x73, app: 0x74,
  data: 0x75, sequence: 0x76, value: 0x77, footer: 0x78 };
const SYMBOLIC_SECTION = { 'amqp:header:list': 0x70, 'amqp:delivery-annotations:map': 0x71,
  'amqp:message-annotations:map': 0x72, 'amqp:properties:list': 0x73, 'amqp:application-properties:map': 0x74,
  'amqp:data:binary': 0x75, 'amqp:amqp-sequence:list': 0x76, 'amqp:amqp-value:*': 0x77, 'amqp:footer:map': 0x78 };

function sectionCode(section) {
  const d = section.descriptor && section.descriptor.value;
  if (typeof d === 'number') return d;
  if (typeof d === 'string') return SYMBOLIC_SECTION[d];
  if (Buffer.isBuffer(d)) return Number(d.readBigUInt64BE(0));
  return undefined;
}

// readSections splits an encoded message into its typed sections.
function readSections(raw) {
  const reader = new T.Reader(raw);
  const out = { body: [] };
  while (reader.remaining()) {
    const s = reader.read();
    const code = sectionCode(s);
    if (code === SECTION.properties) out.properties = s;
    else if (code === SECTION.app) out.app = s;
    else if (code === SECTION.annotations) out.annotations = s;
    else if (code === SECTION.footer) out.footer = s;
    else if (code === SECTION.data || code === SECTION.sequence || code === SECTION.value) out.body.push(s);
  }
  return out;
}

// entries turns a typed AMQP map into [key, typed value] pairs; keys become JavaScript strings.
function entries(typedMap) {
  if (!typedMap || !Array.isArray(typedMap.value)) return [];
  const out = [];
  for (let i = 0; i + 1 < typedMap.value.length; i += 2) out.push([String(T.unwrap(typedMap.value[i])), typedMap.value[i + 1]]);
  return out;
}

// merge replaces or appends pairs of add in base, returning a new list.
function merge(base, add) {
  const out = base.filter(([k]) => !add.some(([a]) => a === k));
  return out.concat(add);
}

function lookup(pairs, key) {
  const hit = pairs.find(([k]) => k === key);
  return hit ? hit[1] : undefined;
}

function typedMap(pairs, symbolKeys) {
  const items = [];
  for (const [k, v] of pairs) items.push(symbolKeys ? T.wrap_symbol(k) : T.wrap_string(k), T.wrap(v));
  return T.Map32(items);
}

function section(code, value) {
  return T.described(T.wrap_ulong(code), value);
}

// plain converts a typed value into something JSON can show.
function plain(v) {
  const u = T.unwrap(v);
  if (Buffer.isBuffer(u)) return u.toString('hex');
  if (u instanceof Date) return u.toISOString();
  if (Array.isArray(u)) return u.map(plain);
  if (u && typeof u === 'object') {
    const o = {};
    for (const k of Object.keys(u)) o[k] = plain(u[k]);
    return o;
  }
  return u;
}

function bodyText(body) {
  if (body === undefined || body === null) return '';
  if (Buffer.isBuffer(body)) return body.toString('utf8');
  if (body.typecode === SECTION.data) {
    const parts = body.multiple ? body.content : [body.content];
    return Buffer.concat(parts.map((p) => Buffer.from(p))).toString('utf8');
  }
  if (typeof body === 'string') return body;
  return JSON.stringify(plain(body));
}

// Service Bus lock tokens are GUIDs. The client reads the delivery tag in .NET byte order and swaps its first three
// groups to get the RFC 4122 order it uses in ReceivedMessage.LockToken and in management requests.
function dotnetOrder(b) {
  return Buffer.from([b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], ...b.subarray(8)]);
}

function newLockToken() {
  const b = crypto.randomBytes(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  return b;
}

function newMessageId() {
  return crypto.randomBytes(16).toString('hex');
}

// ---------------------------------------------------------------------------------------------------------------
// Entities.

// A Queue is a queue, a subscription, or the dead-letter sub-queue of either: something that can be received from.
class Queue {
  constructor(name, kind, settings) {
    this.name = name;            // as created, e.g. "jobs" or "events/Subscriptions/audit"
    this.kind = kind;            // "queue", "subscription" or "deadletter"
    this.lockMs = settings.lockMs;
    this.maxDelivery = settings.maxDelivery;
    this.seq = 0;                // last sequence number handed out (queues only; a topic numbers for its subscriptions)
    this.ready = [];             // messages waiting for a consumer, in sequence order
    this.locks = new Map();      // lock token (hex, RFC order) -> lock
    this.consumers = [];         // rhea sender links of attached receivers
    this.next = 0;               // round-robin position among consumers
    this.completed = [];         // completed messages, for the control API
    this.counts = { completed: 0, abandoned: 0, lockExpired: 0, renewals: 0, lateSettles: 0 };
    this.dlq = kind === 'deadletter' ? null : new Queue(name + '/$DeadLetterQueue', 'deadletter', settings);
  }

  configure(settings) {
    this.lockMs = settings.lockMs;
    this.maxDelivery = settings.maxDelivery;
    if (this.dlq) this.dlq.configure(settings);
  }

  stats() {
    return {
      active: this.ready.length,
      locked: this.locks.size,
      deadLettered: this.dlq ? this.dlq.ready.length + this.dlq.locks.size : 0,
      ...this.counts,
    };
  }

  // drop forgets every message and lock; used when the entity is deleted.
  drop() {
    for (const lock of this.locks.values()) clearTimeout(lock.timer);
    this.locks.clear();
    this.ready = [];
    if (this.dlq) this.dlq.drop();
  }
}

class Topic {
  constructor(name) {
    this.name = name;
    this.kind = 'topic';
    this.seq = 0;
    this.subs = new Map();  // lower-case subscription name -> Queue
  }
}

const entities = new Map();  // lower-case queue or topic name -> Queue | Topic
const keys = new Map();      // SAS key name -> key
let hookURL = '';

function settingsFrom(body) {
  const lockMs = body.lockDurationMs === undefined || body.lockDurationMs === 0 ? DEFAULT_LOCK_MS : body.lockDurationMs;
  const maxDelivery = body.maxDeliveryCount === undefined || body.maxDeliveryCount === 0 ? DEFAULT_MAX_DELIVERY : body.maxDeliveryCount;
  if (!Number.isInteger(lockMs) || lockMs < 1) throw new HTTPError(400, 'lockDurationMs must be a positive integer');
  if (!Number.isInteger(maxDelivery) || maxDelivery < 1) throw new HTTPError(400, 'maxDeliveryCount must be a positive integer');
  return { lockMs, maxDelivery };
}

// resolve maps an AMQP address ("jobs", "events/Subscriptions/audit/$DeadLetterQueue", "jobs/$management", or any of
// these behind amqp://host/) to the entity it names. Service Bus names are case-insensitive.
function resolve(address) {
  const path = String(address || '').replace(/^amqps?:\/\/[^/]*\//i, '').replace(/^\/+/, '');
  const out = { path, management: false, deadLetter: false, node: undefined };
  const parts = path.split('/');
  if (parts.length > 1 && parts[parts.length - 1].toLowerCase() === '$management') {
    out.management = true;
    parts.pop();
  }
  if (parts.length > 1 && parts[parts.length - 1].toLowerCase() === '$deadletterqueue') {
    out.deadLetter = true;
    parts.pop();
  }
  out.entity = parts.join('/');
  let node;
  if (parts.length >= 3 && parts[parts.length - 2].toLowerCase() === 'subscriptions') {
    const topic = entities.get(parts.slice(0, -2).join('/').toLowerCase());
    node = topic && topic.kind === 'topic' ? topic.subs.get(parts[parts.length - 1].toLowerCase()) : undefined;
  } else {
    node = entities.get(out.entity.toLowerCase());
  }
  if (node && out.deadLetter) node = node.kind === 'topic' ? undefined : node.dlq;
  out.node = node;
  return out;
}

function notFoundText(conn, path) {
  const host = (conn && conn.remote && conn.remote.open && conn.remote.open.hostname) || HOST;
  return `The messaging entity 'sb://${host}/${path}' could not be found.`;
}

// ---------------------------------------------------------------------------------------------------------------
// Messages, delivery and locks.

function insertBySequence(list, m) {
  let i = list.length;
  while (i > 0 && list[i - 1].seq > m.seq) i--;
  list.splice(i, 0, m);
}

// enqueue accepts a message sent to a queue or topic; a topic copies it to each of its subscriptions.
function enqueue(node, msg) {
  const parts = readSections(msg.raw);
  let messageId = msg.message_id;
  if (messageId === undefined || messageId === null) {
    messageId = newMessageId();
    const fields = parts.properties && Array.isArray(parts.properties.value) ? parts.properties.value.slice() : [];
    fields[0] = T.wrap_string(messageId);
    parts.properties = section(SECTION.properties, T.List32(fields));
  }
  const base = {
    seq: ++node.seq,
    enqueuedAt: Date.now(),
    messageId: Buffer.isBuffer(messageId) ? messageId.toString('hex') : String(messageId),
    body: bodyText(msg.body),
    header: { durable: msg.durable, priority: msg.priority, ttl: msg.ttl },
    properties: parts.properties,
    app: entries(parts.app),
    annotations: entries(parts.annotations).filter(([k]) => !k.startsWith('x-opt-locked-until') && k !== 'x-opt-sequence-number'),
    bodySections: parts.body,
    footer: parts.footer,
    dc: 0,                 // failed deliveries so far: the AMQP header's delivery-count (the SDK shows it + 1)
    deliveries: 0,         // times delivered
  };
  const targets = node.kind === 'topic' ? [...node.subs.values()] : [node];
  for (const q of targets) {
    insertBySequence(q.ready, { ...base, app: base.app.slice(), annotations: base.annotations.slice() });
    pump(q);
  }
  debug('enqueued', node.name, 'seq', base.seq, 'id', base.messageId, 'to', targets.map((q) => q.name).join(','));
}

function encodeDelivery(q, m, token, lockedUntil) {
  const w = new T.Writer();
  w.write(M.header({ durable: m.header.durable, priority: m.header.priority, ttl: m.header.ttl,
    first_acquirer: m.deliveries === 0, delivery_count: m.dc }).described());
  w.write(section(SECTION.deliveryAnnotations, typedMap([['x-opt-lock-token', T.wrap_uuid(token)]], true)));
  const ours = [
    ['x-opt-sequence-number', T.wrap_long(m.seq)],
    ['x-opt-enqueued-time', T.wrap_timestamp(m.enqueuedAt)],
  ];
  if (lockedUntil !== undefined) ours.push(['x-opt-locked-until', T.wrap_timestamp(lockedUntil)]);
  w.write(section(SECTION.annotations, typedMap(merge(m.annotations, ours), true)));
  w.write(m.properties);
  if (m.app.length > 0) w.write(section(SECTION.app, typedMap(m.app, false)));
  for (const b of m.bodySections) w.write(b);
  if (m.footer) w.write(m.footer);
  return w.toBuffer();
}

// credit is what a consumer link can still take: its link credit less what was handed to rhea but not yet sent.
function credit(link) {
  const outgoing = link.session.outgoing;
  link.sbUnsent = (link.sbUnsent || []).filter((d) => d.id >= outgoing.next_pending_delivery);
  if (!link.is_open() || outgoing.available() <= 0) return 0;
  return link.credit - link.sbUnsent.length;
}

function linkGone(link) {
  return link.sbGone || link.is_closed() || !link.is_remote_open();
}

function pump(q) {
  for (const s of q.consumers) {
    if (linkGone(s)) {
      s.sbGone = true;
      returnUnsent(s);
    }
  }
  q.consumers = q.consumers.filter((s) => !s.sbGone);
  while (q.ready.length > 0 && q.consumers.length > 0) {
    let chosen;
    for (let i = 0; i < q.consumers.length; i++) {
      const s = q.consumers[(q.next + i) % q.consumers.length];
      if (credit(s) > 0) {
        chosen = s;
        q.next = (q.next + i + 1) % q.consumers.length;
        break;
      }
    }
    if (!chosen) return;
    deliver(q, chosen, q.ready.shift());
  }
}

function deliver(q, link, m) {
  const token = newLockToken();
  const presettled = link.local.attach.snd_settle_mode === 1; // ReceiveAndDelete
  const lockedUntil = presettled ? undefined : Date.now() + q.lockMs;
  const d = link.send(encodeDelivery(q, m, token, lockedUntil), dotnetOrder(token), 0);
  link.sbUnsent.push(d);
  m.deliveries++;
  if (presettled) {
    debug('delivered (receive-and-delete)', q.name, 'seq', m.seq);
    return;
  }
  const lock = { key: token.toString('hex'), q, m, d, until: lockedUntil, timer: null, settling: false };
  lock.timer = setTimeout(() => expire(lock), q.lockMs);
  q.locks.set(lock.key, lock);
  d.sbLock = lock;
  debug('delivered', q.name, 'seq', m.seq, 'deliveryCount', m.dc + 1, 'lock', lock.key);
}

function held(lock) {
  return lock && lock.q.locks.get(lock.key) === lock;
}

function unlock(lock) {
  clearTimeout(lock.timer);
  lock.q.locks.delete(lock.key);
}

function expire(lock) {
  if (!held(lock)) return;
  unlock(lock);
  lock.q.counts.lockExpired++;
  debug('lock expired', lock.q.name, 'seq', lock.m.seq, 'lock', lock.key);
  failed(lock.q, lock.m, []);
}

// failed puts a message whose delivery failed (abandoned or lock expired) back, or dead-letters it once it has been
// delivered maxDeliveryCount times.
function failed(q, m, props) {
  m.dc++;
  m.app = merge(m.app, props);
  if (q.kind !== 'deadletter' && m.dc >= q.maxDelivery) {
    deadLetter(q, m, 'MaxDeliveryCountExceeded', `Message could not be consumed after ${q.maxDelivery} delivery attempts.`, []);
    return;
  }
  insertBySequence(q.ready, m);
  pump(q);
}

function deadLetter(q, m, reason, description, props) {
  const target = q.dlq || q; // dead-lettering from a dead-letter queue leaves the message there
  m.app = merge(m.app, props.concat([['DeadLetterReason', T.wrap_string(reason || '')],
    ['DeadLetterErrorDescription', T.wrap_string(description || '')]]));
  m.annotations = merge(m.annotations, [['x-opt-deadletter-source', T.wrap_string(q.name)]]);
  m.deadLetter = { reason: reason || '', description: description || '' };
  debug('dead-lettered', q.name, 'seq', m.seq, 'reason', reason);
  insertBySequence(target.ready, m);
  pump(target);
}

// callHook tells the test's hook that a message is about to be completed and waits for its answer.
async function callHook(q, m) {
  if (!hookURL) return;
  const payload = { entity: q.name, sequenceNumber: m.seq, messageId: m.messageId, body: m.body, deliveryCount: m.dc + 1 };
  try {
    const res = await fetch(hookURL, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify(payload), signal: AbortSignal.timeout(HOOK_TIMEOUT_MS) });
    await res.arrayBuffer();
  } catch (err) {
    log('completion hook', hookURL, 'failed:', err.message);
  }
}

// settle applies a settlement to the message a lock is for. It resolves to false when the lock is no longer held
// (expired, or the message already settled): the caller then answers "lock lost".
async function settle(lock, op, info) {
  if (!held(lock) || lock.settling) {
    if (lock) lock.q.counts.lateSettles++;
    return false;
  }
  const { q, m } = lock;
  if (op === 'complete') {
    lock.settling = true;
    await callHook(q, m);
    lock.settling = false;
    if (!held(lock)) {
      q.counts.lateSettles++;
      return false;
    }
  }
  unlock(lock);
  debug('settled', q.name, 'seq', m.seq, op);
  switch (op) {
    case 'complete':
      q.counts.completed++;
      q.completed.push({ sequenceNumber: m.seq, messageId: m.messageId, body: m.body, deliveryCount: m.dc + 1,
        completedAt: new Date().toISOString() });
      break;
    case 'abandon':
      q.counts.abandoned++;
      failed(q, m, info.props || []);
      break;
    case 'deadletter':
      m.deliveriesAtDeadLetter = m.dc + 1;
      deadLetter(q, m, info.reason, info.description, info.props || []);
      break;
    case 'release':
      insertBySequence(q.ready, m);
      pump(q);
      break;
    default:
      throw new Error('unknown settlement ' + op);
  }
  return true;
}

// returnUnsent gives back messages handed to rhea for a link that closed before they were sent.
function returnUnsent(link) {
  const outgoing = link.session.outgoing;
  for (const d of link.sbUnsent || []) {
    if (d.id >= outgoing.next_pending_delivery && held(d.sbLock)) {
      unlock(d.sbLock);
      insertBySequence(d.sbLock.q.ready, d.sbLock.m);
    }
  }
  link.sbUnsent = [];
}

function allQueues() {
  const out = [];
  for (const e of entities.values()) {
    const qs = e.kind === 'topic' ? [...e.subs.values()] : [e];
    for (const q of qs) out.push(q, q.dlq);
  }
  return out;
}

// forget drops consumer links that are gone. Their locked messages stay locked until the locks expire, as on Service
// Bus; only messages that never left the fake go back at once.
function forget(isGone) {
  for (const q of allQueues()) {
    if (q.consumers.some((s) => linkGone(s) || isGone(s))) {
      for (const s of q.consumers) if (isGone(s)) s.sbGone = true;
      pump(q);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Authentication ($cbs).

function claimed(conn, path) {
  if (keys.size === 0) return true;
  const p = path.toLowerCase();
  for (const c of conn.sbClaims || []) {
    if (p === c || p.startsWith(c + '/')) return true;
  }
  return false;
}

// checkToken verifies a SharedAccessSignature token for audience; it returns why it is refused, or '' if it is good.
function checkToken(token, audience) {
  if (keys.size === 0) return '';
  const prefix = 'SharedAccessSignature ';
  if (typeof token !== 'string' || !token.startsWith(prefix)) return 'InvalidToken: the token is not a SharedAccessSignature.';
  const f = {};
  for (const part of token.slice(prefix.length).split('&')) {
    const i = part.indexOf('=');
    if (i > 0) f[part.slice(0, i)] = part.slice(i + 1);
  }
  if (!f.sr || !f.sig || !f.se || !f.skn) return 'InvalidToken: the token lacks sr, sig, se or skn.';
  const key = keys.get(f.skn);
  if (key === undefined) return `InvalidSignature: the key name '${f.skn}' is not known.`;
  let sig;
  try {
    sig = Buffer.from(decodeURIComponent(f.sig), 'base64');
  } catch (err) {
    return 'InvalidSignature: the signature is not URL-encoded base64.';
  }
  const want = crypto.createHmac('sha256', Buffer.from(key, 'utf8')).update(f.sr + '\n' + f.se).digest();
  if (sig.length !== want.length || !crypto.timingSafeEqual(sig, want)) return 'InvalidSignature: The token has an invalid signature.';
  if (Number(f.se) * 1000 < Date.now()) return 'ExpiredToken: The token is expired.';
  let resource;
  try {
    resource = decodeURIComponent(f.sr).toLowerCase();
  } catch (err) {
    return 'InvalidToken: sr is not URL-encoded.';
  }
  if (!String(audience || '').toLowerCase().startsWith(resource)) return `InvalidAudience: the token is for '${resource}', not '${audience}'.`;
  return '';
}

// ---------------------------------------------------------------------------------------------------------------
// Request/response ($cbs and <entity>/$management).

function reply(conn, request, status, description, body, condition) {
  const link = conn.sbReplies && conn.sbReplies.get(request.reply_to);
  if (!link || linkGone(link)) {
    log('no reply link', request.reply_to, 'for', request.application_properties && request.application_properties.operation);
    return;
  }
  const props = { 'status-code': T.wrap_int(status), 'status-description': description };
  if (condition) props['error-condition'] = T.wrap_symbol(condition);
  link.send({ correlation_id: request.message_id, to: request.reply_to, application_properties: props,
    body: body === undefined ? null : body });
}

function tokensOf(body) {
  const list = body && body['lock-tokens'];
  return (Array.isArray(list) ? list : []).map((t) => Buffer.from(t).toString('hex'));
}

// typedBody returns the request's amqp-value map as [key, typed value] pairs, to keep property types.
function typedBody(msg) {
  const v = readSections(msg.raw).body[0];
  return v && Array.isArray(v.value) ? entries(v) : [];
}

async function management(conn, target, msg) {
  const ap = msg.application_properties || {};
  const op = ap.operation;
  const r = resolve(target);
  if (!r.node) {
    reply(conn, msg, 404, notFoundText(conn, r.entity), null, 'amqp:not-found');
    return;
  }
  const q = r.node;
  if (q.kind === 'topic') {
    reply(conn, msg, 400, `Operation ${op} is not supported on topic '${q.name}'.`);
    return;
  }
  const body = msg.body || {};
  if (op === 'com.microsoft:renew-lock') {
    const exps = [];
    for (const key of tokensOf(body)) {
      const lock = q.locks.get(key);
      if (!lock || lock.settling) {
        reply(conn, msg, 410, LOCK_LOST_TEXT, null, 'com.microsoft:message-lock-lost');
        return;
      }
      clearTimeout(lock.timer);
      lock.until = Date.now() + q.lockMs;
      lock.timer = setTimeout(() => expire(lock), q.lockMs);
      q.counts.renewals++;
      exps.push(lock.until);
      debug('renewed', q.name, 'seq', lock.m.seq, 'until', new Date(lock.until).toISOString());
    }
    reply(conn, msg, 200, 'OK', T.wrap_map({ expirations: T.wrap_array(exps, T.Timestamp.typecode) }));
    return;
  }
  if (op === 'com.microsoft:update-disposition') {
    const status = body['disposition-status'];
    const ops = { completed: 'complete', abandoned: 'abandon', suspended: 'deadletter' };
    if (!ops[status]) {
      reply(conn, msg, 400, `disposition-status '${status}' is not supported by the fake.`);
      return;
    }
    const typed = typedBody(msg);
    const props = entries(lookup(typed, 'properties-to-modify'));
    const info = { reason: body['deadletter-reason'], description: body['deadletter-description'], props };
    for (const key of tokensOf(body)) {
      const lock = q.locks.get(key);
      const ok = lock ? await settle(lock, ops[status], info) : false;
      if (!ok) {
        if (!lock) q.counts.lateSettles++;
        reply(conn, msg, 410, LOCK_LOST_TEXT, null, 'com.microsoft:message-lock-lost');
        return;
      }
    }
    reply(conn, msg, 200, 'OK', null);
    return;
  }
  reply(conn, msg, 501, `Operation ${op} is not implemented by the fake.`);
}

function cbs(conn, msg) {
  const ap = msg.application_properties || {};
  if (ap.operation !== 'put-token') {
    reply(conn, msg, 400, `Operation ${ap.operation} is not supported on $cbs.`);
    return;
  }
  const refused = checkToken(msg.body, ap.name);
  if (refused) {
    log('put-token refused for', ap.name + ':', refused);
    reply(conn, msg, 401, refused, null, 'amqp:unauthorized-access');
    return;
  }
  const path = resolve(ap.name).path.toLowerCase();
  conn.sbClaims = conn.sbClaims || new Set();
  conn.sbClaims.add(path);
  reply(conn, msg, 202, 'Accepted', null);
}

// ---------------------------------------------------------------------------------------------------------------
// Links.

const container = rhea.create_container({ id: 'sbfake', autoaccept: false, autosettle: false, treat_modified_as_released: false });
container.sasl_server_mechanisms.enable_anonymous();

function isRPC(address) {
  return address === '$cbs' || /\/\$management$/i.test(address || '') || address === '$management';
}

function mirror(link) {
  link.local.attach.snd_settle_mode = link.remote.attach.snd_settle_mode;
  link.local.attach.rcv_settle_mode = link.remote.attach.rcv_settle_mode;
}

// refuse answers an attach with no terminus and detaches with an error, as Service Bus does.
function refuse(link, condition, description) {
  log('refusing link', link.name, condition, description);
  link.close({ condition, description });
}

// A client receiver attached: the fake is the sender.
container.on('sender_open', (ctx) => {
  const s = ctx.sender;
  const source = s.remote.attach.source && s.remote.attach.source.address;
  const target = s.remote.attach.target && s.remote.attach.target.address;
  if (isRPC(source)) {
    mirror(s);
    s.set_source({ address: source });
    s.set_target({ address: target });
    ctx.connection.sbReplies = ctx.connection.sbReplies || new Map();
    ctx.connection.sbReplies.set(target, s);
    return;
  }
  const r = resolve(source);
  if (!r.node) return refuse(s, 'amqp:not-found', notFoundText(ctx.connection, r.path));
  if (r.node.kind === 'topic') return refuse(s, 'amqp:not-allowed', `Cannot receive from topic '${r.node.name}': receive from one of its subscriptions.`);
  if (!claimed(ctx.connection, r.path)) return refuse(s, 'amqp:unauthorized-access', `Unauthorized access to '${r.path}': no valid token was put for it.`);
  mirror(s);
  s.set_source({ address: source });
  s.set_target({ address: target });
  s.sbUnsent = [];
  s.sbQueue = r.node;
  r.node.consumers.push(s);
  debug('receiver attached to', r.node.name, 'settle modes', s.local.attach.snd_settle_mode, s.local.attach.rcv_settle_mode);
});

// A client sender attached: the fake receives.
container.on('receiver_open', (ctx) => {
  const rcv = ctx.receiver;
  const target = rcv.remote.attach.target && rcv.remote.attach.target.address;
  const source = rcv.remote.attach.source && rcv.remote.attach.source.address;
  if (!isRPC(target)) {
    const r = resolve(target);
    if (!r.node) return refuse(rcv, 'amqp:not-found', notFoundText(ctx.connection, r.path));
    if (r.node.kind !== 'queue' && r.node.kind !== 'topic') return refuse(rcv, 'amqp:not-allowed', `Cannot send to '${r.path}': send to a queue or a topic.`);
    if (!claimed(ctx.connection, r.path)) return refuse(rcv, 'amqp:unauthorized-access', `Unauthorized access to '${r.path}': no valid token was put for it.`);
  } else if (target !== '$cbs') {
    const r = resolve(target);
    if (!claimed(ctx.connection, r.path)) return refuse(rcv, 'amqp:unauthorized-access', `Unauthorized access to '${target}': no valid token was put for it.`);
  }
  mirror(rcv);
  rcv.set_target({ address: target });
  rcv.set_source({ address: source });
});

container.on('message', (ctx) => {
  const target = ctx.receiver.target && ctx.receiver.target.address;
  const msg = ctx.message;
  if (target === '$cbs') {
    ctx.delivery.update(true, M.accepted().described());
    cbs(ctx.connection, msg);
    return;
  }
  if (isRPC(target)) {
    ctx.delivery.update(true, M.accepted().described());
    management(ctx.connection, target, msg).catch((err) => log('management request failed:', err.stack));
    return;
  }
  const r = resolve(target);
  if (!r.node) {
    ctx.delivery.update(true, M.rejected({ error: { condition: 'amqp:not-found', description: notFoundText(ctx.connection, r.path) } }).described());
    return;
  }
  enqueue(r.node, msg);
  ctx.delivery.update(true, M.accepted().described());
});

// Settlement of a delivery on the receive link. The client (receiver settle mode "second") waits for the fake to
// settle in turn: the fake always answers with a settled disposition, carrying an error when the lock was lost.
function lockLostOutcome() {
  return M.rejected({ error: { condition: 'com.microsoft:message-lock-lost', description: LOCK_LOST_TEXT } }).described();
}

function answer(d, outcome) {
  if (d.link.session.is_closed()) return;
  d.update(true, outcome);
}

function onOutcome(op, infoOf) {
  return (ctx) => {
    const d = ctx.delivery;
    if (d.sbHandled) return;
    d.sbHandled = true;
    const lock = d.sbLock;
    if (!lock) {
      if (!d.settled) answer(d, undefined);
      return;
    }
    const info = infoOf(d.remote_state);
    if (info.unsupported) {
      answer(d, M.rejected({ error: { condition: 'amqp:not-implemented', description: info.unsupported } }).described());
      return;
    }
    settle(lock, op, info).then((ok) => answer(d, ok ? undefined : lockLostOutcome()),
      (err) => { log('settlement failed:', err.stack); answer(d, M.rejected({ error: { condition: 'amqp:internal-error', description: err.message } }).described()); });
  };
}

container.on('accepted', onOutcome('complete', () => ({})));
container.on('released', onOutcome('release', () => ({})));
container.on('modified', onOutcome('abandon', (state) => {
  if (state && state.undeliverable_here) return { unsupported: 'Deferring messages is not supported by the fake.' };
  return { props: entries(state && state.value && state.value[2]) };
}));
container.on('rejected', onOutcome('deadletter', (state) => {
  const error = state && state.value && state.value[0];
  const fields = error && Array.isArray(error.value) ? error.value : [];
  const info = entries(fields[2]);
  const text = (k) => { const v = lookup(info, k); return v === undefined ? '' : String(T.unwrap(v)); };
  return { reason: text('DeadLetterReason'), description: text('DeadLetterErrorDescription'),
    props: info.filter(([k]) => k !== 'DeadLetterReason' && k !== 'DeadLetterErrorDescription') };
}));

container.on('sendable', (ctx) => { if (ctx.sender.sbQueue) pump(ctx.sender.sbQueue); });
container.on('sender_draining', (ctx) => {
  const s = ctx.sender;
  if (s.sbQueue) pump(s.sbQueue);
  if (!s.sbQueue || s.sbQueue.ready.length === 0) s.set_drained(true);
});
container.on('sender_close', (ctx) => forget((s) => s === ctx.sender));
container.on('session_close', (ctx) => forget((s) => s.session === ctx.session));
container.on('connection_close', (ctx) => forget((s) => s.connection === ctx.connection));
container.on('disconnected', (ctx) => forget((s) => s.connection === ctx.connection));
container.on('sender_error', () => {});
container.on('receiver_error', () => {});
container.on('session_error', () => {});
container.on('connection_error', () => {});
container.on('error', (err) => log('amqp error:', err && err.message));

// ---------------------------------------------------------------------------------------------------------------
// Control API.

class HTTPError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function readJSON(req) {
  return new Promise((resolveBody, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (!text) return resolveBody({});
      try {
        resolveBody(JSON.parse(text));
      } catch (err) {
        reject(new HTTPError(400, 'body is not JSON: ' + err.message));
      }
    });
    req.on('error', reject);
  });
}

function send(res, status, value) {
  if (value === undefined) {
    res.writeHead(status);
    res.end();
    return;
  }
  const text = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(text);
}

function nodeFor(name) {
  const node = resolve(name).node;
  if (!node) throw new HTTPError(404, `entity '${name}' does not exist`);
  return node;
}

function deadLetterView(m) {
  const app = {};
  for (const [k, v] of m.app) app[k] = plain(v);
  return { sequenceNumber: m.seq, messageId: m.messageId, body: m.body,
    deliveryCount: m.deliveriesAtDeadLetter || m.dc, applicationProperties: app,
    deadLetterReason: m.deadLetter ? m.deadLetter.reason : '', deadLetterErrorDescription: m.deadLetter ? m.deadLetter.description : '' };
}

function sumStats(queues) {
  const total = { active: 0, locked: 0, deadLettered: 0, completed: 0, abandoned: 0, lockExpired: 0, renewals: 0, lateSettles: 0 };
  for (const q of queues) {
    const s = q.stats();
    for (const k of Object.keys(total)) total[k] += s[k];
  }
  return total;
}

function deleteEntity(name) {
  const r = resolve(name);
  if (!r.node || r.deadLetter) throw new HTTPError(404, `entity '${name}' does not exist`);
  const node = r.node;
  let queues;
  if (node.kind === 'subscription') {
    for (const topic of entities.values()) {
      if (topic.kind !== 'topic') continue;
      for (const [k, sub] of topic.subs) if (sub === node) topic.subs.delete(k);
    }
    queues = [node];
  } else {
    entities.delete(node.name.toLowerCase());
    queues = node.kind === 'topic' ? [...node.subs.values()] : [node];
  }
  for (const q of queues) {
    for (const s of q.consumers.concat(q.dlq.consumers)) {
      s.sbGone = true;
      if (!s.is_closed()) s.close({ condition: 'amqp:not-found', description: notFoundText(s.connection, q.name) });
    }
    q.consumers = [];
    q.dlq.consumers = [];
    q.drop();
  }
  log('deleted', node.kind, node.name);
}

async function control(req, res) {
  const url = new URL(req.url, 'http://control');
  const path = url.pathname.split('/').map((p) => decodeURIComponent(p));
  const method = req.method;
  if (url.pathname === '/' || url.pathname === '/healthz') return send(res, 200, { ok: true });
  if (path[1] === 'hook' && path.length === 2 && method === 'PUT') {
    const body = await readJSON(req);
    hookURL = body.url || '';
    log('completion hook', hookURL ? 'set to ' + hookURL : 'cleared');
    return send(res, 204);
  }
  if (path[1] === 'keys' && path.length === 3 && method === 'PUT') {
    const body = await readJSON(req);
    if (typeof body.key !== 'string' || body.key === '') throw new HTTPError(400, 'key must be a non-empty string');
    keys.set(path[2], body.key);
    log('registered SAS key', path[2]);
    return send(res, 204);
  }
  if (path[1] !== 'entities' || path.length < 3) throw new HTTPError(404, `no route for ${method} ${url.pathname}`);
  let rest = path.slice(2);
  let view = '';
  if (rest.length > 1 && (rest[rest.length - 1] === 'deadletters' || rest[rest.length - 1] === 'completed')) view = rest.pop();
  const name = rest.join('/');
  if (!name) throw new HTTPError(400, 'entity name is empty');
  const subscription = rest.length >= 3 && rest[rest.length - 2].toLowerCase() === 'subscriptions';

  if (method === 'PUT' && !view) {
    const body = await readJSON(req);
    if (subscription) {
      const topicName = rest.slice(0, -2).join('/');
      const topic = entities.get(topicName.toLowerCase());
      if (!topic || topic.kind !== 'topic') throw new HTTPError(404, `topic '${topicName}' does not exist`);
      const subName = rest[rest.length - 1];
      const settings = settingsFrom(body);
      const existing = topic.subs.get(subName.toLowerCase());
      if (existing) existing.configure(settings);
      else topic.subs.set(subName.toLowerCase(), new Queue(`${topic.name}/Subscriptions/${subName}`, 'subscription', settings));
      log('subscription', `${topic.name}/Subscriptions/${subName}`, 'lock', settings.lockMs, 'ms, max delivery', settings.maxDelivery);
      return send(res, 204);
    }
    const kind = url.searchParams.get('kind') || 'queue';
    if (kind !== 'queue' && kind !== 'topic') throw new HTTPError(400, `kind must be queue or topic, not '${kind}'`);
    const existing = entities.get(name.toLowerCase());
    if (existing && existing.kind !== kind) throw new HTTPError(409, `'${name}' already exists as a ${existing.kind}`);
    if (kind === 'topic') {
      if (!existing) entities.set(name.toLowerCase(), new Topic(name));
      log('topic', name);
      return send(res, 204);
    }
    const settings = settingsFrom(body);
    if (existing) existing.configure(settings);
    else entities.set(name.toLowerCase(), new Queue(name, 'queue', settings));
    log('queue', name, 'lock', settings.lockMs, 'ms, max delivery', settings.maxDelivery);
    return send(res, 204);
  }
  if (method === 'DELETE' && !view) {
    deleteEntity(name);
    return send(res, 204);
  }
  if (method === 'GET') {
    const node = nodeFor(name);
    const queues = node.kind === 'topic' ? [...node.subs.values()] : [node];
    if (view === 'deadletters') {
      const dl = [];
      for (const q of queues) {
        const dlq = q.dlq || q;
        dl.push(...dlq.ready, ...[...dlq.locks.values()].map((l) => l.m));
      }
      dl.sort((a, b) => a.seq - b.seq);
      return send(res, 200, dl.map(deadLetterView));
    }
    if (view === 'completed') return send(res, 200, queues.flatMap((q) => q.completed));
    return send(res, 200, node.kind === 'topic' ? sumStats(queues) : node.stats());
  }
  throw new HTTPError(405, `${method} is not supported on ${url.pathname}`);
}

const controlServer = http.createServer((req, res) => {
  control(req, res).catch((err) => {
    if (!(err instanceof HTTPError)) log('control request failed:', err.stack);
    if (!res.headersSent) send(res, err.status || 500, { error: err.message });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Start.

if (process.env.SBFAKE_EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
}
process.on('SIGTERM', () => process.exit(0));

const amqpServer = container.listen({ host: HOST, port: Number(process.env.SBFAKE_AMQP_PORT || 0),
  session_buffer_size: { outgoing: 1 << 20, incoming: 2048 } });
amqpServer.on('error', (err) => {
  console.error('AMQP listener:', err.message);
  process.exit(1);
});
amqpServer.on('listening', () => {
  controlServer.on('error', (err) => {
    console.error('control listener:', err.message);
    process.exit(1);
  });
  controlServer.listen(Number(process.env.SBFAKE_CONTROL_PORT || 0), HOST, () => {
    console.log(JSON.stringify({ amqpPort: amqpServer.address().port, controlPort: controlServer.address().port }));
  });
});
