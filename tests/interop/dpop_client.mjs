// A DPoP client nobody here wrote: panva's `dpop` (npm) makes the key
// pairs and proofs; Node's fetch does HTTP. For each algorithm it gets a
// bound token with client_credentials, then calls a protected URL with it:
// once rightly, once replaying the same proof, once downgraded to Bearer.
//
//   node dpop_client.mjs TOKEN_URL RESOURCE_URL CLIENT_ID < client_secret
//
// Prints one JSON object with what each step answered.
import { generateKeyPair, generateProof } from 'dpop'

const [tokenUrl, resourceUrl, clientId] = process.argv.slice(2)
let secret = ''
for await (const chunk of process.stdin) secret += chunk
secret = secret.trim()

const basic = 'Basic ' + Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')
const out = {}
for (const alg of ['Ed25519', 'ES256']) {
  const keypair = await generateKeyPair(alg)
  const issued = await fetch(tokenUrl, {
    method: 'POST',
    headers: {
      authorization: basic,
      'content-type': 'application/x-www-form-urlencoded',
      dpop: await generateProof(keypair, tokenUrl, 'POST'),
    },
    body: 'grant_type=client_credentials',
  })
  const token = await issued.json()
  const proof = await generateProof(keypair, resourceUrl, 'GET', undefined, token.access_token)
  const call = (authorization, dpop) =>
    fetch(resourceUrl, { headers: dpop ? { authorization, dpop } : { authorization } })
  const ok = await call(`DPoP ${token.access_token}`, proof)
  const replayed = await call(`DPoP ${token.access_token}`, proof)
  const downgraded = await call(`Bearer ${token.access_token}`)
  const fresh = await call(
    `DPoP ${token.access_token}`,
    await generateProof(keypair, resourceUrl, 'GET', undefined, token.access_token),
  )
  out[alg] = {
    issued: issued.status,
    token_type: token.token_type,
    ok: ok.status,
    ok_body: await ok.text(),
    replayed: replayed.status,
    replayed_challenge: replayed.headers.get('www-authenticate'),
    downgraded: downgraded.status,
    fresh: fresh.status,
  }
}
console.log(JSON.stringify(out))
