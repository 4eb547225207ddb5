#!/usr/bin/env node
// A Node.js caller of facesvc built from protos/ alone (no generated code, no Python):
// calls Health, Enroll and Verify on a running service and checks the results and the
// google.rpc.ErrorInfo reason of a refused photo. Exits 0 when every check holds and
// prints one JSON line describing what it saw.
//
//   node client.js [TARGET]        TARGET defaults to $FACESVC_TARGET or localhost:50051;
//                                  several replicas: ipv4:10.0.0.1:50051,10.0.0.2:50051 or
//                                  dns:///facesvc-headless.faces.svc.cluster.local:50051
//   FACESVC_FACES_DIR=...          the labelled photos (default ../../shared/faces)
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const ROOT = path.resolve(__dirname, '..');
const target = process.argv[2] || process.env.FACESVC_TARGET || 'localhost:50051';
const faces = process.env.FACESVC_FACES_DIR || path.resolve(ROOT, '..', 'shared', 'faces');
const celebs = path.join(faces, 'celebs');

const definition = protoLoader.loadSync('facesvc/v1/face_service.proto', {
  includeDirs: [path.join(ROOT, 'protos')],
  keepCase: true, // field names as in the .proto: stored_embeddings, face_count
  enums: String,
  longs: String,
  defaults: true,
});
const { FaceService } = grpc.loadPackageDefinition(definition).facesvc.v1;
// What the Python SDK does, in grpc-js's own terms (docs/SCALING.md, "Replicas that stop"):
// round_robin sends each call to a replica whose connection is READY and skips one that
// failed; the retryPolicy sends a call that failed UNAVAILABLE (its replica was killed
// mid-call) again, and round_robin's next pick is a READY replica. Every RPC but
// CheckLiveness is idempotent; a stream is not retried once a response came. A graceful
// stop (SIGTERM: GOAWAY, calls in flight finish) moves new calls to the other replicas,
// but gRPC's server cancels a call that reaches it between its stop and the GOAWAY's
// arrival: CANCELLED from the server is retried too (a call this process cancels itself
// is not). gRPC retries only a call whose request it still holds: 256 KiB by default,
// less than many photos, hence the larger buffer.
const serviceConfig = {
  loadBalancingConfig: [{ round_robin: {} }],
  methodConfig: [
    {
      name: [{ service: 'facesvc.v1.FaceService' }],
      retryPolicy: {
        maxAttempts: 5,
        initialBackoff: '0.05s',
        maxBackoff: '2s',
        backoffMultiplier: 2,
        retryableStatusCodes: ['UNAVAILABLE', 'CANCELLED'],
      },
    },
  ],
};
const client = new FaceService(target, grpc.credentials.createInsecure(), {
  'grpc.service_config': JSON.stringify(serviceConfig),
  'grpc.per_rpc_retry_buffer_size': 16 * 1024 * 1024, // the service's message limit and more
  'grpc.retry_buffer_size': 64 * 1024 * 1024,
  'grpc.max_reconnect_backoff_ms': 2000, // a replica back from a restart takes calls within 2 s
});

function call(method, request) {
  const deadline = new Date(Date.now() + 30_000);
  return new Promise((resolve, reject) => {
    client[method](request, { deadline }, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

// ---- google.rpc.Status from the grpc-status-details-bin trailer, decoded by hand ----
// Status {1: int32 code, 2: string message, 3: repeated Any details}
// Any {1: string type_url, 2: bytes value}
// ErrorInfo {1: string reason, 2: string domain, 3: map<string, string> metadata}
// A map entry is a message {1: key, 2: value}. Five fields do not justify vendoring
// googleapis' protos; protobuf's wire format is all that is needed.

function fields(buffer) {
  const out = [];
  let at = 0;
  const varint = () => {
    let value = 0;
    let shift = 0;
    for (;;) {
      const byte = buffer[at++];
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
      shift += 7;
    }
  };
  while (at < buffer.length) {
    const key = varint();
    const number = Math.floor(key / 8);
    const wireType = key % 8;
    if (wireType === 0) out.push([number, varint()]);
    else if (wireType === 2) {
      const length = varint();
      out.push([number, buffer.subarray(at, at + length)]);
      at += length;
    } else if (wireType === 1) at += 8;
    else if (wireType === 5) at += 4;
    else throw new Error(`unsupported wire type ${wireType}`);
  }
  return out;
}

function errorInfo(error) {
  const [details] = error.metadata ? error.metadata.get('grpc-status-details-bin') : [];
  if (!details) return null;
  for (const [number, any] of fields(details)) {
    if (number !== 3) continue;
    const parts = Object.fromEntries(fields(any));
    if (String(parts[1]) !== 'type.googleapis.com/google.rpc.ErrorInfo') continue;
    const info = { reason: '', domain: '', metadata: {} };
    for (const [field, value] of fields(parts[2])) {
      if (field === 1) info.reason = String(value);
      else if (field === 2) info.domain = String(value);
      else if (field === 3) {
        const entry = Object.fromEntries(fields(value));
        info.metadata[String(entry[1])] = String(entry[2] ?? '');
      }
    }
    return info;
  }
  return null;
}

async function refusal(method, request) {
  try {
    await call(method, request);
  } catch (error) {
    return { code: error.code, info: errorInfo(error) };
  }
  throw new Error(`${method} was expected to fail`);
}

// ---- the checks ----

function people() {
  const rows = fs.readFileSync(path.join(celebs, 'IDENTITIES.tsv'), 'utf8').trim().split('\n');
  return rows.map((row) => row.split('\t'));
}

async function main() {
  const health = await call('Health', {});
  assert.equal(health.status, 'SERVING_STATUS_SERVING');
  assert.ok(health.model && health.embedding_dim > 0, 'Health names the model and its dimension');

  const rows = people();
  const [first, person] = rows[0];
  const same = rows.find(([file, who]) => who === person && file !== first)[0];
  const other = rows.find(([, who]) => who !== person)[0];
  const photo = (file) => fs.readFileSync(path.join(celebs, file));

  const enrolled = await call('Enroll', { image: photo(first) });
  const { embedding } = enrolled;
  assert.equal(embedding.model, health.model);
  assert.equal(embedding.values.length, health.embedding_dim);
  assert.equal(enrolled.face.face_count, 1);

  const genuine = await call('Verify', { image: photo(same), stored_embeddings: [embedding] });
  assert.equal(genuine.match, true, `${same} should match ${first}`);
  assert.ok(genuine.confidence >= 50);
  const impostor = await call('Verify', { image: photo(other), stored_embeddings: [embedding] });
  assert.equal(impostor.match, false, `${other} should not match ${first}`);
  assert.ok(impostor.confidence < 50);

  const couple = await refusal('Enroll', { image: photo('couple.jpg') });
  assert.equal(couple.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(couple.info && couple.info.domain, 'facesvc');
  assert.equal(couple.info.reason, 'MULTIPLE_FACES');
  assert.ok(Number(couple.info.metadata.face_count) >= 2);

  const foreign = { model: 'Facenet512', values: new Array(512).fill(0.1) };
  const mismatch = await refusal('Verify', { image: photo(same), stored_embeddings: [foreign] });
  assert.equal(mismatch.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(mismatch.info.reason, 'EMBEDDING_MODEL_MISMATCH');
  assert.equal(mismatch.info.metadata.embedding_model, 'Facenet512');

  console.log(
    JSON.stringify({
      target,
      load_balancing: serviceConfig.loadBalancingConfig,
      retry_policy: serviceConfig.methodConfig[0].retryPolicy,
      model: health.model,
      embedding_dim: health.embedding_dim,
      genuine: { photos: [first, same], match: genuine.match, confidence: genuine.confidence },
      impostor: { photos: [first, other], match: impostor.match, confidence: impostor.confidence },
      refusals: [couple.info, mismatch.info],
    }),
  );
}

main()
  .then(() => client.close())
  .catch((error) => {
    console.error(`interop: ${error.stack || error}`);
    client.close();
    process.exitCode = 1;
  });
