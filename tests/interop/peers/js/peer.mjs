// js-libp2p 2.9 interop peer for the Python stack's tests, driven by JSON lines.
//
//   node peer.mjs [--key-type ed25519|secp256k1|rsa] [--monitor-interval-ms N] [--monitor-timeout-ms N]
//                 [--max-stream-window BYTES]
//
// Prints one JSON line once listening ({"peer_id", "addrs"}); serves /echo/1.0.0 (echo until the
// remote half-closes, then close) and /ipfs/ping/1.0.0; then answers one JSON command per stdin line
// with one JSON line ({"error": ...} on failure); exits when stdin closes:
//   {"cmd":"echo","addr":A,"size":N,"streams":K}  K streams: write N random bytes, half-close, read
//                                                 to EOF, compare -> {"ok","bytes","peer_id"}
//   {"cmd":"ping","addr":A,"count":C}             js's ping service -> {"rtt_ms": [...]}
//   {"cmd":"peer","peer_id":P}                    what identify stored -> {"protocols","connections":[...]}
// Node 20 lacks Promise.withResolvers, which libp2p 2.9 reaches through its peer store
// (mortice -> it-queue): a polyfill goes in before libp2p is imported (dynamic imports below).

if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { generateKeyPair } = await import('@libp2p/crypto/keys')
const { peerIdFromString } = await import('@libp2p/peer-id')
const { multiaddr } = await import('@multiformats/multiaddr')
const { randomBytes } = await import('node:crypto')
const readline = await import('node:readline')

const ECHO = '/echo/1.0.0'
const CHUNK = 1 << 16
const KEY_TYPES = { ed25519: ['Ed25519'], secp256k1: ['secp256k1'], rsa: ['RSA', 2048] }

function arg (name, fallback) {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : fallback
}

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const log = (...a) => process.stderr.write(`jspeer: ${a.join(' ')}\n`)

async function echoOne (node, addr, size) {
  const stream = await node.dialProtocol(multiaddr(addr), ECHO)
  const payload = randomBytes(size)
  const write = stream.sink((async function * () {
    for (let off = 0; off < size; off += CHUNK) yield payload.subarray(off, off + CHUNK)
  })()) // ends with a half-close
  const parts = []
  let got = 0
  for await (const chunk of stream.source) {
    const bytes = chunk.subarray()
    parts.push(bytes)
    got += bytes.length
    if (got > size) break
  }
  await write
  await stream.close()
  if (Buffer.compare(Buffer.concat(parts), payload) !== 0) {
    throw new Error(`echo mismatch: ${got} of ${size} bytes back`)
  }
  return size
}

async function run (node, cmd) {
  if (cmd.cmd === 'echo') {
    const size = cmd.size ?? 1000
    const done = await Promise.all(Array.from({ length: cmd.streams ?? 1 }, () => echoOne(node, cmd.addr, size)))
    return { ok: true, bytes: done.reduce((a, b) => a + b, 0), peer_id: cmd.addr.split('/p2p/').pop() }
  }
  if (cmd.cmd === 'ping') {
    const rtts = []
    for (let i = 0; i < (cmd.count ?? 1); i++) rtts.push(await node.services.ping.ping(multiaddr(cmd.addr)))
    return { rtt_ms: rtts }
  }
  if (cmd.cmd === 'peer') {
    const id = peerIdFromString(cmd.peer_id)
    const stored = await node.peerStore.get(id)
    const conns = node.getConnections(id).map(c => ({ status: c.status, direction: c.direction, rtt: c.rtt, streams: c.streams.length }))
    return { protocols: stored.protocols, connections: conns, agent: new TextDecoder().decode(stored.metadata.get('AgentVersion') ?? new Uint8Array()) }
  }
  throw new Error(`unknown command ${JSON.stringify(cmd.cmd)}`)
}

async function main () {
  const [type, bits] = KEY_TYPES[arg('--key-type', 'ed25519')] ?? (() => { throw new Error('unsupported --key-type') })()
  const node = await createLibp2p({
    privateKey: await generateKeyPair(type, bits),
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    // --max-stream-window N caps yamux's receive window auto-tuning (js's default: 16 MiB)
    streamMuxers: [yamux(arg('--max-stream-window') == null ? {} : { maxStreamWindowSize: Number(arg('--max-stream-window')) })],
    services: { identify: identify(), ping: ping() },
    connectionMonitor: {
      pingInterval: Number(arg('--monitor-interval-ms', 10000)),
      // the monitor never feeds its adaptive timeout, so each ping gets exactly minTimeout
      pingTimeout: { minTimeout: Number(arg('--monitor-timeout-ms', 5000)), maxTimeout: Number(arg('--monitor-timeout-ms', 5000)) }
    }
  })
  await node.handle(ECHO, async ({ stream }) => {
    try {
      await stream.sink(stream.source)
    } catch (err) {
      log('echo handler:', err.message)
      stream.abort(err)
    }
  }, { maxInboundStreams: 256 })
  node.addEventListener('connection:close', (evt) => log('connection closed', evt.detail.remotePeer.toString(), evt.detail.status))
  emit({ peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map(a => a.toString()) })

  const lines = readline.createInterface({ input: process.stdin })
  for await (const line of lines) {
    if (!line.trim()) continue
    const started = performance.now()
    let result
    try {
      const cmd = JSON.parse(line)
      if (cmd.cmd === 'quit') break
      result = await run(node, cmd)
    } catch (err) {
      result = { error: `${err.name}: ${err.message}` }
    }
    result.elapsed_s = Math.round(performance.now() - started) / 1000
    emit(result)
  }
  await node.stop()
  process.exit(0)
}

main().catch((err) => { emit({ error: `${err.name}: ${err.message}` }); process.exit(1) })
