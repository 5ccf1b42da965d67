// Drives kafkajs (the pure-JavaScript Kafka client, as Node applications use it) against
// ringbus's Kafka listener; run by cli/tests/kafkajs.rs, which starts the broker, installs
// nothing, and checks the output.
//
// Usage: node check.js BOOTSTRAP NATIVE_TOPIC NATIVE_COUNT
// kafkajs is found through NODE_PATH (the Rust side points it at RINGBUS_KAFKAJS_DIR's
// node_modules). Exits non-zero with the failed check on stderr. On success prints the
// NATIVE_TOPIC records it consumed as KEY:VALUE lines, bytes as stored (the Rust side compares
// them with what `ringbus produce` wrote); kafkajs's own log goes to stderr.
'use strict'

const path = require('path')
const { Kafka, logLevel, Partitioners } = require('kafkajs')

const [BOOTSTRAP, NATIVE_TOPIC, NATIVE_COUNT_TEXT] = process.argv.slice(2)
const NATIVE_COUNT = Number(NATIVE_COUNT_TEXT)
const TOPIC = 'kafkajs'
const PARTITIONS = 4
const GROUP = 'kafkajs-readers'
// The first member's records, sent in SENDS awaited send() calls of COUNT / SENDS each.
const COUNT = 1200
const SENDS = 12
// The records produced after the first member's commits, for the second member.
const COUNT_AFTER = 100
// How long any one wait (for records, for commits) may take.
const WAIT_MS = 60000

class CheckFailed extends Error {}

function check(condition, what) {
  if (!condition) throw new CheckFailed(what)
}

// kafkajs logs through console.info (stdout) by default: stdout carries the native records,
// so its log goes to stderr.
const kafka = new Kafka({
  clientId: 'ringbus-kafkajs-check',
  brokers: [BOOTSTRAP],
  logLevel: logLevel.WARN,
  logCreator: () => ({ namespace, label, log }) => {
    const { message, ...extra } = log
    process.stderr.write(`kafkajs ${label} [${namespace}] ${message} ${JSON.stringify(extra)}\n`)
  },
})

// A record's key and value: the key names it, the value holds every byte value (0x00 and
// 0xff, invalid UTF-8) so that byte-for-byte means something.
function keyOf(i) {
  return Buffer.from(`key-${i}`)
}
function valueOf(i) {
  const value = Buffer.alloc(64 + (i % 200))
  for (let j = 0; j < value.length; j++) value[j] = (i * 31 + j * 7) & 0xff
  return value
}
function indexOf(key) {
  const match = /^key-(\d+)$/.exec(key.toString('latin1'))
  check(match !== null, `a key this check wrote, got ${key.toString('hex')}`)
  return Number(match[1])
}

// Resolves when `done()` holds (checked after every `poke()`), rejects after WAIT_MS with
// `what()`, which says how far it got.
function waiter(what, done) {
  let resolve
  let reject
  const promise = new Promise((yes, no) => {
    resolve = yes
    reject = no
  })
  const timer = setTimeout(() => reject(new CheckFailed(`timed out after ${WAIT_MS} ms: ${what()}`)), WAIT_MS)
  const poke = () => {
    if (done()) {
      clearTimeout(timer)
      resolve()
    }
  }
  const fail = error => {
    clearTimeout(timer)
    reject(error)
  }
  return { promise, poke, fail }
}

// Produces records first..first+count-1 with acks -1, in `sends` awaited calls; checks that
// every send resolved without an error code, and returns what each reported per partition.
async function produce(producer, first, count, sends) {
  const reports = []
  const perSend = count / sends
  check(Number.isInteger(perSend), `${count} records split into ${sends} sends`)
  for (let s = 0; s < sends; s++) {
    const indexes = []
    for (let i = first + s * perSend; i < first + (s + 1) * perSend; i++) indexes.push(i)
    const metadata = await producer.send({
      topic: TOPIC,
      acks: -1,
      messages: indexes.map(i => ({
        key: keyOf(i),
        value: valueOf(i),
        headers: { index: String(i) },
      })),
    })
    for (const partition of metadata) {
      check(partition.topicName === TOPIC, `send ${s}: topic ${partition.topicName}`)
      check(partition.errorCode === 0, `send ${s}: partition ${partition.partition} error ${partition.errorCode}`)
    }
    reports.push({ indexes, metadata })
  }
  return reports
}

// One group member: subscribes from the beginning, consumes until it has the records
// `expected` (a Set of indexes) names, each exactly once and byte-for-byte, then waits until
// its auto-commits cover every record it consumed, and leaves. Returns where each record was.
async function consumeAsMember(expected) {
  const consumer = kafka.consumer({ groupId: GROUP })
  const seen = new Map() // index -> { partition, offset }
  const consumedNext = new Map() // partition -> the offset after the last record consumed
  const committedNext = new Map() // partition -> the offset the last commit stored
  const covered = () =>
    seen.size === expected.size &&
    [...consumedNext].every(([partition, next]) => committedNext.get(partition) === next)
  const all = waiter(
    () =>
      `the member consumed ${seen.size} of ${expected.size} records; ` +
      `consumed up to ${JSON.stringify([...consumedNext])}, committed ${JSON.stringify([...committedNext])}`,
    covered
  )
  // kafkajs emits COMMIT_OFFSETS once OffsetCommit succeeded.
  consumer.on(consumer.events.COMMIT_OFFSETS, ({ payload }) => {
    try {
      for (const { topic, partitions } of payload.topics) {
        check(topic === TOPIC, `commit names ${topic}`)
        // kafkajs keys its committed offsets by partition as a string.
        for (const { partition, offset } of partitions) committedNext.set(Number(partition), Number(offset))
      }
      all.poke()
    } catch (error) {
      all.fail(error)
    }
  })
  consumer.on(consumer.events.CRASH, ({ payload }) => all.fail(payload.error))
  await consumer.connect()
  await consumer.subscribe({ topics: [TOPIC], fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      try {
        check(topic === TOPIC, `a record of ${topic}`)
        const index = indexOf(message.key)
        const offset = Number(message.offset)
        check(expected.has(index), `record ${index} (partition ${partition} offset ${offset}) is one this member should get`)
        check(!seen.has(index), `record ${index} consumed twice: at ${JSON.stringify(seen.get(index))} and partition ${partition} offset ${offset}`)
        check(message.value.equals(valueOf(index)), `record ${index}'s value byte for byte, got ${message.value.toString('hex')}`)
        check(
          Object.keys(message.headers).length === 1 && message.headers.index.toString() === String(index),
          `record ${index}'s header, got ${JSON.stringify(message.headers)}`
        )
        const next = consumedNext.get(partition)
        check(next === undefined || offset === next, `partition ${partition}: offset ${offset} follows ${next}`)
        seen.set(index, { partition, offset })
        consumedNext.set(partition, offset + 1)
        all.poke()
      } catch (error) {
        all.fail(error)
      }
    },
  })
  await all.promise
  await consumer.disconnect()
  return seen
}

// The committed offsets of GROUP, per partition (-1 where none).
async function committed(admin) {
  const topics = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] })
  check(topics.length === 1 && topics[0].topic === TOPIC, `fetchOffsets answers for ${TOPIC}: ${JSON.stringify(topics)}`)
  const offsets = new Map(topics[0].partitions.map(({ partition, offset }) => [partition, Number(offset)]))
  check(offsets.size === PARTITIONS, `fetchOffsets answers every partition: ${JSON.stringify(topics)}`)
  return offsets
}

async function main() {
  check(process.argv.length === 5 && Number.isInteger(NATIVE_COUNT), 'usage: check.js BOOTSTRAP NATIVE_TOPIC NATIVE_COUNT')
  // The kafkajs found is the one package.json pins: a stale install fails here, not later.
  const pinned = require(path.join(__dirname, 'package.json')).dependencies.kafkajs
  const installed = require('kafkajs/package.json').version
  check(installed === pinned, `kafkajs ${pinned} installed (package.json), found ${installed}`)
  process.stderr.write(`kafkajs ${installed} on node ${process.version}\n`)

  const admin = kafka.admin()
  await admin.connect()
  check(
    (await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }], waitForLeaders: true })) === true,
    `${TOPIC} created`
  )
  const { topics } = await admin.fetchTopicMetadata({ topics: [TOPIC] })
  check(topics.length === 1 && topics[0].partitions.length === PARTITIONS, `${TOPIC} has ${PARTITIONS} partitions: ${JSON.stringify(topics)}`)

  // Keyed records (the default murmur2 partitioner spreads them), acks -1.
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  const reports = await produce(producer, 0, COUNT, SENDS)

  // The first member gets every record once, and commits them.
  const first = new Set([...Array(COUNT).keys()])
  const seen = await consumeAsMember(first)
  // Each partition's records are at offsets 0, 1, ... in the order they were sent, and every
  // send reported the base offset its first record of that partition got.
  const countPerPartition = new Map()
  for (const { indexes, metadata } of reports) {
    const bases = new Map()
    for (const i of indexes) {
      const { partition, offset } = seen.get(i)
      const count = countPerPartition.get(partition) || 0
      check(offset === count, `record ${i}: offset ${offset} in partition ${partition}, expected ${count}`)
      countPerPartition.set(partition, count + 1)
      if (!bases.has(partition)) bases.set(partition, offset)
    }
    const reported = new Map(metadata.map(({ partition, baseOffset }) => [partition, Number(baseOffset)]))
    check(
      reported.size === bases.size && [...bases].every(([partition, base]) => reported.get(partition) === base),
      `send reports ${JSON.stringify(metadata)}, records landed at ${JSON.stringify([...bases])}`
    )
  }
  check(countPerPartition.size === PARTITIONS, `the keys spread over all ${PARTITIONS} partitions: ${JSON.stringify([...countPerPartition])}`)
  const watermarks = await admin.fetchTopicOffsets(TOPIC)
  for (const { partition, low, high } of watermarks) {
    check(Number(low) === 0 && Number(high) === countPerPartition.get(partition), `partition ${partition}: watermarks ${low}..${high}`)
  }
  let offsets = await committed(admin)
  for (const [partition, count] of countPerPartition) {
    check(offsets.get(partition) === count, `partition ${partition}: committed ${offsets.get(partition)}, consumed ${count}`)
  }
  process.stderr.write(`first member: ${COUNT} records once, committed ${JSON.stringify([...offsets])}\n`)

  // The next member of the group resumes after the commits: only the new records.
  await produce(producer, COUNT, COUNT_AFTER, 1)
  const after = new Set([...Array(COUNT_AFTER).keys()].map(i => COUNT + i))
  await consumeAsMember(after)
  offsets = await committed(admin)
  const total = [...offsets.values()].reduce((sum, offset) => sum + offset, 0)
  check(total === COUNT + COUNT_AFTER, `commits add up to ${COUNT + COUNT_AFTER}: ${JSON.stringify([...offsets])}`)
  process.stderr.write(`second member: only the ${COUNT_AFTER} new records\n`)

  const groups = (await admin.listGroups()).groups.map(({ groupId }) => groupId)
  check(groups.includes(GROUP), `${GROUP} is listed: ${JSON.stringify(groups)}`)
  await producer.disconnect()
  await admin.disconnect()

  // The records `ringbus produce` wrote, read by a kafkajs consumer (assigned by its group,
  // no commits) in offset order, printed as stored.
  const reader = kafka.consumer({ groupId: 'kafkajs-native' })
  const lines = []
  const all = waiter(
    () => `${lines.length} of ${NATIVE_COUNT} records of ${NATIVE_TOPIC} consumed`,
    () => lines.length === NATIVE_COUNT
  )
  reader.on(reader.events.CRASH, ({ payload }) => all.fail(payload.error))
  await reader.connect()
  await reader.subscribe({ topics: [NATIVE_TOPIC], fromBeginning: true })
  await reader.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      try {
        check(partition === 0 && Number(message.offset) === lines.length, `${NATIVE_TOPIC}: partition ${partition} offset ${message.offset}, expected 0 ${lines.length}`)
        check(message.key !== null && message.value !== null, `${NATIVE_TOPIC} offset ${message.offset} has a key and a value`)
        lines.push(Buffer.concat([message.key, Buffer.from(':'), message.value, Buffer.from('\n')]))
        all.poke()
      } catch (error) {
        all.fail(error)
      }
    },
  })
  await all.promise
  await reader.disconnect()
  await new Promise(resolve => process.stdout.write(Buffer.concat(lines), resolve))
}

main().then(
  () => process.exit(0),
  error => {
    process.stderr.write(error instanceof CheckFailed ? `check failed: ${error.message}\n` : `failed: ${error.stack}\n`)
    process.exit(1)
  }
)
