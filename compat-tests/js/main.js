#!/usr/bin/env node
// kafkajs (pinned in package.json / package-lock.json) scenarios against a broker.
//
// Usage: node main.js BOOTSTRAP SCENARIO
// Exits 0 and prints "OK SCENARIO" on success; exits 1 with "MISMATCH: ..." (or "ERROR: ...")
// on stderr otherwise. The produce scenario also prints one "EXPECT {json}" line describing
// every record it had acknowledged, which test_kafkajs.py reads back with confluent-kafka
// (assign + seek: kafkajs' Consumer always joins a group). The group scenario is run by
// test_groups_kafkajs.py against a group-enabled broker.
'use strict'

const crypto = require('crypto')
const { Kafka, logLevel, CompressionTypes, ConfigResourceTypes, Partitioners, AssignerProtocol } = require('kafkajs')

class Mismatch extends Error {}

function fail(msg) {
  throw new Mismatch(msg)
}

function eq(got, want, what) {
  const g = JSON.stringify(got)
  const w = JSON.stringify(want)
  if (g !== w) fail(`${what}: got ${g} want ${w}`)
}

function ok(cond, what) {
  if (!cond) fail(what)
}

async function expectError(promise, type, what) {
  let err = null
  try {
    await promise
  } catch (e) {
    err = e
  }
  if (err === null) fail(`${what}: succeeded, expected ${type}`)
  // KafkaJSProtocolError has .type; KafkaJSNumberOfRetriesExceeded wraps it in .cause,
  // KafkaJSAggregateError / KafkaJSCreatePartitionsError list them in .errors
  const types = [err.type, err.cause && err.cause.type, ...(err.errors || []).map(e => e.type)]
  if (!types.includes(type)) fail(`${what}: expected ${type}, got ${err.name}: ${err.message} (types ${JSON.stringify(types)})`)
}

function topicName(prefix) {
  return `${prefix}-${crypto.randomBytes(6).toString('hex')}`
}

// A whole-second timestamp one hour ago (same rule as helpers.recent_base_ms()).
function recentBaseMs() {
  return Math.floor((Date.now() - 3600000) / 1000) * 1000
}

// retries: 5 bounds every call (kafkajs' idempotent producer would otherwise retry forever and
// warns "Limiting retries for the idempotent producer may invalidate EoS guarantees");
// retries: 0 for calls that are expected to fail with a retriable error code.
function client(bootstrap, clientId, retries = 5) {
  return new Kafka({
    clientId,
    brokers: [bootstrap],
    connectionTimeout: 10000,
    requestTimeout: 30000,
    retry: { retries },
    logLevel: logLevel.WARN,
    // kafkajs' default logger writes to stdout via console; keep stdout for OK/EXPECT lines
    logCreator: () => ({ namespace, level, label, log }) => {
      const { message, ...extra } = log
      process.stderr.write(`kafkajs ${label} [${namespace}] ${message} ${JSON.stringify(extra)}\n`)
    },
  })
}

async function withAdmin(kafka, fn) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect()
  }
}

async function waitUntil(what, cond) {
  const end = Date.now() + 30000
  let last = null
  while (Date.now() < end) {
    try {
      if (await cond()) return
    } catch (e) {
      last = e
    }
    await new Promise(r => setTimeout(r, 50)) // poll interval
  }
  fail(`timed out waiting for ${what} (last error: ${last && last.message})`)
}

// ------------------------------------------------------------------ admin
async function scenarioAdmin(bootstrap) {
  const kafka = client(bootstrap, 'jet-compat-kafkajs-admin')
  await withAdmin(kafka, async admin => {
    const t = topicName('kjs-admin')
    const created = await admin.createTopics({
      waitForLeaders: true,
      timeout: 30000,
      topics: [
        {
          topic: t,
          numPartitions: 2,
          replicationFactor: 1,
          configEntries: [
            { name: 'retention.ms', value: '3600000' },
            { name: 'max.message.bytes', value: '200000' },
            { name: 'cleanup.policy', value: 'delete' },
          ],
        },
      ],
    })
    eq(created, true, 'createTopics result')
    // kafkajs turns an all-TOPIC_ALREADY_EXISTS answer into `false`
    eq(
      await admin.createTopics({ topics: [{ topic: t, numPartitions: 2, replicationFactor: 1 }], timeout: 30000 }),
      false,
      'createTopics of an existing topic'
    )

    const topics = await admin.listTopics()
    ok(topics.includes(t), `listTopics does not include ${t}: ${JSON.stringify(topics)}`)

    const md = await admin.fetchTopicMetadata({ topics: [t] })
    eq(md.topics.length, 1, 'fetchTopicMetadata topics')
    eq(md.topics[0].name, t, 'fetchTopicMetadata name')
    const parts = md.topics[0].partitions.map(p => [p.partitionId, p.partitionErrorCode, p.leader, p.replicas, p.isr])
    parts.sort((a, b) => a[0] - b[0])
    eq(parts, [[0, 0, 1, [1], [1]], [1, 0, 1, [1], [1]]], 'fetchTopicMetadata partitions [id, error, leader, replicas, isr]')

    // describeConfigs: the three entries we set, plus a default one
    const dc = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: t }],
    })
    eq(dc.resources.length, 1, 'describeConfigs resources')
    const r = dc.resources[0]
    eq([r.errorCode, r.resourceType, r.resourceName], [0, ConfigResourceTypes.TOPIC, t], 'describeConfigs resource')
    const byName = Object.fromEntries(r.configEntries.map(e => [e.configName, e]))
    for (const [name, value] of [['retention.ms', '3600000'], ['max.message.bytes', '200000'], ['cleanup.policy', 'delete']]) {
      ok(byName[name], `describeConfigs: ${name} missing (got ${Object.keys(byName).join(',')})`)
      eq(byName[name].configValue, value, `describeConfigs ${name} value`)
      eq(byName[name].isDefault, false, `describeConfigs ${name} isDefault`)
      eq(byName[name].configSource, 1, `describeConfigs ${name} configSource (1 = DYNAMIC_TOPIC_CONFIG)`)
    }
    ok(byName['segment.bytes'] || byName['min.insync.replicas'], 'describeConfigs: no default entries (segment.bytes / min.insync.replicas) listed')

    // configNames filter
    const dcf = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: t, configNames: ['retention.ms'] }],
    })
    eq(
      dcf.resources[0].configEntries.map(e => [e.configName, e.configValue]),
      [['retention.ms', '3600000']],
      'describeConfigs with configNames'
    )

    // broker resource
    const db = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.BROKER, name: '1', configNames: ['num.partitions'] }],
    })
    eq(db.resources[0].errorCode, 0, 'describeConfigs broker errorCode')
    const np = db.resources[0].configEntries.find(e => e.configName === 'num.partitions')
    ok(np && /^[0-9]+$/.test(np.configValue), `describeConfigs broker num.partitions: ${JSON.stringify(np)}`)

    // createPartitions 2 -> 4, then a decrease must fail
    await admin.createPartitions({ topicPartitions: [{ topic: t, count: 4 }], timeout: 30000 })
    await waitUntil('4 partitions with leader 1', async () => {
      const m = await admin.fetchTopicMetadata({ topics: [t] })
      const ps = m.topics[0].partitions
      return ps.length === 4 && ps.every(p => p.leader === 1 && p.partitionErrorCode === 0)
    })
    await expectError(
      admin.createPartitions({ topicPartitions: [{ topic: t, count: 2 }] }),
      'INVALID_PARTITIONS',
      'createPartitions 4 -> 2'
    )

    // describeCluster
    const cl = await admin.describeCluster()
    const [host, port] = [bootstrap.slice(0, bootstrap.lastIndexOf(':')), Number(bootstrap.slice(bootstrap.lastIndexOf(':') + 1))]
    eq(cl.brokers, [{ nodeId: 1, host, port }], 'describeCluster brokers')
    eq(cl.controller, 1, 'describeCluster controller')
    ok(typeof cl.clusterId === 'string' && cl.clusterId.length > 0, `describeCluster clusterId: ${JSON.stringify(cl.clusterId)}`)

    // deleteTopics
    await admin.deleteTopics({ topics: [t], timeout: 30000 })
    await waitUntil(`${t} gone from listTopics`, async () => !(await admin.listTopics()).includes(t))
  })
  // UNKNOWN_TOPIC_OR_PARTITION is retriable for kafkajs: ask once, without retries
  await withAdmin(client(bootstrap, 'jet-compat-kafkajs-admin-noretry', 0), admin =>
    expectError(
      admin.deleteTopics({ topics: [topicName('kjs-missing')], timeout: 30000 }),
      'UNKNOWN_TOPIC_OR_PARTITION',
      'deleteTopics of an unknown topic'
    )
  )
}

// ------------------------------------------------------------------ produce
// kafkajs 2.2.4 ships GZIP only; Snappy, LZ4 and ZSTD need third-party codec packages
// registered in CompressionCodecs, so they are not exercised here.
const CODECS = [
  ['none', CompressionTypes.None],
  ['gzip', CompressionTypes.GZIP],
]

const b64 = v => (v === null || v === undefined ? null : Buffer.from(v).toString('base64'))

async function scenarioProduce(bootstrap) {
  const kafka = client(bootstrap, 'jet-compat-kafkajs-produce')
  const t = topicName('kjs-produce')
  const PARTITIONS = 3
  await withAdmin(kafka, admin =>
    admin.createTopics({ waitForLeaders: true, timeout: 30000, topics: [{ topic: t, numPartitions: PARTITIONS, replicationFactor: 1 }] })
  )

  const base = recentBaseMs()
  const next = Array(PARTITIONS).fill(0) // expected next offset per partition
  const expect = []
  let seq = 0

  const producers = [
    ['idempotent', kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner })],
    ['default', kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })],
  ]
  for (const [, p] of producers) await p.connect()
  try {
    for (const [kind, producer] of producers) {
      for (const [codecName, codec] of CODECS) {
        for (let round = 0; round < 2; round++) {
          const messages = []
          // interleave partitions so kafkajs has to group them; 4 records per partition per send
          for (let i = 0; i < 4 * PARTITIONS; i++) {
            const partition = i % PARTITIONS
            const n = seq++
            const m = {
              partition,
              key: `k-${kind}-${codecName}-${n}`,
              value: `v-${kind}-${codecName}-${round}-${n}-` + 'x'.repeat(n % 7 === 0 ? 5000 : n % 13),
              timestamp: String(base + n * 1000),
              headers: { h1: `one-${n}`, bin: Buffer.from([0, 255, n & 0xff]), dup: ['a', 'b'], empty: '' },
            }
            if (n % 11 === 3) m.key = null // null key
            if (n % 17 === 5) m.value = null // tombstone (null value)
            if (n % 10 === 9) m.headers = {} // no headers
            if (n % 19 === 2) m.value = Buffer.from(crypto.randomBytes(64)) // binary value
            messages.push(m)
          }
          const res = await producer.send({ topic: t, acks: -1, compression: codec, timeout: 30000, messages })
          const got = res.map(r => [r.topicName, r.partition, r.errorCode, r.baseOffset]).sort((a, b) => a[1] - b[1])
          const want = [...Array(PARTITIONS).keys()].map(p => [t, p, 0, String(next[p])])
          eq(got, want, `send(${kind}, ${codecName}, round ${round}) result [topic, partition, error, baseOffset]`)
          for (const m of messages) {
            const headers = []
            for (const [k, v] of Object.entries(m.headers)) for (const x of Array.isArray(v) ? v : [v]) headers.push([k, b64(x)])
            expect.push({
              partition: m.partition,
              offset: next[m.partition]++,
              key: b64(m.key),
              value: b64(m.value),
              timestamp: Number(m.timestamp),
              headers,
              producer: kind,
              codec: codecName,
            })
          }
        }
      }
    }

    // a send without an explicit partition: kafkajs' murmur2 partitioner picks it; the answer says where
    const res = await producers[1][1].send({
      topic: t,
      acks: -1,
      messages: [{ key: 'keyed-no-partition', value: 'by-key', timestamp: String(base + seq * 1000), headers: { via: 'partitioner' } }],
    })
    eq(res.length, 1, 'keyed send result entries')
    const { partition, baseOffset, errorCode } = res[0]
    eq([errorCode, baseOffset], [0, String(next[partition])], `keyed send result [error, baseOffset] on partition ${partition}`)
    expect.push({
      partition,
      offset: next[partition]++,
      key: b64('keyed-no-partition'),
      value: b64('by-key'),
      timestamp: base + seq * 1000,
      headers: [['via', b64('partitioner')]],
      producer: 'default',
      codec: 'none',
    })
  } finally {
    for (const [, p] of producers) await p.disconnect()
  }

  // the high watermarks kafkajs sees must match what was acknowledged
  await withAdmin(kafka, async admin => {
    const offs = (await admin.fetchTopicOffsets(t)).map(o => [o.partition, o.low, o.high]).sort((a, b) => a[0] - b[0])
    eq(offs, next.map((n, p) => [p, '0', String(n)]), 'fetchTopicOffsets after produce [partition, low, high]')
  })

  process.stdout.write('EXPECT ' + JSON.stringify({ topic: t, partitions: PARTITIONS, records: expect }) + '\n')
}

// ------------------------------------------------------------------ offsets
async function scenarioOffsets(bootstrap) {
  const kafka = client(bootstrap, 'jet-compat-kafkajs-offsets')
  const t = topicName('kjs-offsets')
  const base = recentBaseMs()
  await withAdmin(kafka, async admin => {
    await admin.createTopics({ waitForLeaders: true, timeout: 30000, topics: [{ topic: t, numPartitions: 3, replicationFactor: 1 }] })

    // empty topic: low = high = 0; by timestamp -> kafkajs maps -1 to the high watermark (0)
    const empty = (await admin.fetchTopicOffsets(t)).map(o => [o.partition, o.offset, o.low, o.high]).sort((a, b) => a[0] - b[0])
    eq(empty, [[0, '0', '0', '0'], [1, '0', '0', '0'], [2, '0', '0', '0']], 'fetchTopicOffsets on an empty topic [partition, offset, low, high]')

    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner })
    await producer.connect()
    try {
      // partition 0: 10 records at base + i s; partition 1: 5 records at base + 20 s + i s (two sends); partition 2 stays empty
      const p0 = [...Array(10).keys()].map(i => ({ partition: 0, value: `p0-${i}`, timestamp: String(base + i * 1000) }))
      const p1 = [...Array(5).keys()].map(i => ({ partition: 1, value: `p1-${i}`, timestamp: String(base + 20000 + i * 1000) }))
      await producer.send({ topic: t, acks: -1, messages: [...p0, ...p1.slice(0, 2)] })
      await producer.send({ topic: t, acks: -1, compression: CompressionTypes.GZIP, messages: p1.slice(2) })
    } finally {
      await producer.disconnect()
    }

    const offs = (await admin.fetchTopicOffsets(t)).map(o => [o.partition, o.offset, o.low, o.high]).sort((a, b) => a[0] - b[0])
    eq(offs, [[0, '10', '0', '10'], [1, '5', '0', '5'], [2, '0', '0', '0']], 'fetchTopicOffsets [partition, offset, low, high]')

    const byTs = async ts => (await admin.fetchTopicOffsetsByTimestamp(t, ts)).map(o => [o.partition, String(o.offset)]).sort((a, b) => a[0] - b[0])
    const cases = [
      [base - 60000, [[0, '0'], [1, '0'], [2, '0']], 'before every record'],
      [base, [[0, '0'], [1, '0'], [2, '0']], 'first timestamp'],
      [base + 3000, [[0, '3'], [1, '0'], [2, '0']], 'exact timestamp of p0 offset 3'],
      [base + 3500, [[0, '4'], [1, '0'], [2, '0']], 'between p0 offsets 3 and 4'],
      [base + 9000, [[0, '9'], [1, '0'], [2, '0']], 'last record of p0'],
      [base + 9001, [[0, '10'], [1, '0'], [2, '0']], 'after p0 (-1 -> high watermark)'],
      [base + 22000, [[0, '10'], [1, '2'], [2, '0']], 'p1 offset 2 (first record of the gzip batch)'],
      [base + 23500, [[0, '10'], [1, '4'], [2, '0']], 'inside the gzip batch of p1'],
      [base + 3600000, [[0, '10'], [1, '5'], [2, '0']], 'after every record'],
    ]
    for (const [ts, want, what] of cases) eq(await byTs(ts), want, `fetchTopicOffsetsByTimestamp(base ${ts - base >= 0 ? '+' : ''}${ts - base} ms: ${what})`)

    // deleteTopicRecords moves the low watermark; offsets by timestamp never go below it
    await admin.deleteTopicRecords({ topic: t, partitions: [{ partition: 0, offset: '4' }] })
    const after = (await admin.fetchTopicOffsets(t)).map(o => [o.partition, o.low, o.high]).sort((a, b) => a[0] - b[0])
    eq(after, [[0, '4', '10'], [1, '0', '5'], [2, '0', '0']], 'fetchTopicOffsets after deleteTopicRecords(p0 < 4) [partition, low, high]')
    eq(await byTs(base), [[0, '4'], [1, '0'], [2, '0']], 'fetchTopicOffsetsByTimestamp(base) after deleteTopicRecords(p0 < 4)')
  })
}

// ------------------------------------------------------------------ consumer group
// Two consumers of one group split a 6-partition topic; every record is consumed (at least
// once) and the group's committed offsets reach the end offsets once both have disconnected.
async function scenarioGroup(bootstrap) {
  const kafka = client(bootstrap, 'jet-compat-kafkajs-group')
  const t = topicName('kjs-group')
  const groupId = topicName('kjs-group-g')
  const PARTITIONS = 6
  const N = 3000
  const consumed = new Set()
  const consumers = [0, 1].map(() =>
    kafka.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 500, rebalanceTimeout: 10000, maxWaitTimeInMs: 100 })
  )
  await withAdmin(kafka, async admin => {
    await admin.createTopics({ waitForLeaders: true, timeout: 30000, topics: [{ topic: t, numPartitions: PARTITIONS, replicationFactor: 1 }] })
    for (const c of consumers) {
      await c.connect()
      await c.subscribe({ topics: [t], fromBeginning: true })
      await c.run({ autoCommitInterval: 500, eachMessage: async ({ message }) => { consumed.add(message.value.toString()) } })
    }
    await waitUntil('two members splitting the topic', async () => {
      const { groups: [g] } = await admin.describeGroups([groupId])
      if (g.state !== 'Stable' || g.members.length !== 2) return false
      const owned = g.members.map(m => AssignerProtocol.MemberAssignment.decode(m.memberAssignment).assignment[t] || [])
      return owned.every(ps => ps.length > 0) && new Set(owned.flat()).size === PARTITIONS && owned.flat().length === PARTITIONS
    })
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
    await producer.connect()
    try {
      const messages = Array.from({ length: N }, (_, i) => ({ value: String(i), partition: i % PARTITIONS }))
      await producer.send({ topic: t, messages })
    } finally {
      await producer.disconnect()
    }
    await waitUntil('every record consumed', () => consumed.size === N)
    for (const c of consumers) await c.disconnect() // commits what was consumed, leaves the group
    const ends = Object.fromEntries((await admin.fetchTopicOffsets(t)).map(o => [o.partition, o.high]))
    await waitUntil('committed offsets at the end offsets', async () => {
      const [{ partitions }] = await admin.fetchOffsets({ groupId, topics: [t] })
      return partitions.length === PARTITIONS && partitions.every(p => p.offset === ends[p.partition])
    })
    const { groups: [g] } = await admin.describeGroups([groupId])
    eq(g.state, 'Empty', 'group state after both consumers disconnected')
  })
  for (let i = 0; i < N; i++) ok(consumed.has(String(i)), `record ${i} never consumed`)
}

// ------------------------------------------------------------------ main
const SCENARIOS = { admin: scenarioAdmin, produce: scenarioProduce, offsets: scenarioOffsets, group: scenarioGroup }

async function main() {
  if (process.argv.length !== 4) {
    process.stderr.write('usage: node main.js BOOTSTRAP SCENARIO\n')
    process.exit(2)
  }
  const [bootstrap, scenario] = process.argv.slice(2)
  const fn = SCENARIOS[scenario]
  if (!fn) {
    process.stderr.write(`unknown scenario ${scenario} (known: ${Object.keys(SCENARIOS).join(', ')})\n`)
    process.exit(2)
  }
  const kafkajsVersion = require('kafkajs/package.json').version
  process.stderr.write(`kafkajs ${kafkajsVersion}, node ${process.version}, scenario ${scenario} against ${bootstrap}\n`)
  try {
    await fn(bootstrap)
  } catch (e) {
    if (e instanceof Mismatch) {
      process.stderr.write(`MISMATCH: ${scenario}: ${e.message}\n`)
    } else {
      process.stderr.write(`ERROR: ${scenario}: ${e.name}: ${e.message}${e.type ? ` (type ${e.type}, code ${e.code})` : ''}\n${e.stack}\n`)
    }
    process.exit(1)
  }
  process.stdout.write(`OK ${scenario}\n`)
}

main()
