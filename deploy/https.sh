#!/usr/bin/env bash
# HTTPS in two minutes: a private CA and a certificate for localhost made
# with openssl, both APIs served over HTTPS, a token fetched and checked.
set -euo pipefail
cd "$(mktemp -d)"

# 1. A CA and a certificate for localhost (in production: your CA's or ACME's).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -keyout ca.key -out ca.pem -subj /CN=my-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -days 30 -extfile san.ext -out server.pem 2>/dev/null
chmod 600 server.key

# 2. Both APIs over HTTPS (SIGHUP reloads the files when they are renewed).
tessera serve --tls-cert server.pem --tls-key server.key \
  --admin-tls-cert server.pem --admin-tls-key server.key &
until curl -sf --cacert ca.pem https://localhost:8080/readyz >/dev/null; do sleep 0.1; done

# 3. The CLI trusts the CA; a partner gets a token over HTTPS; both checks pass.
export TESSERA_CA_FILE=ca.pem
PASSWORD=$(tessera user add channel_user | sed -n 's/^password: //p')
TOKEN=$(curl -s --cacert ca.pem -X POST "https://localhost:8080/generateToken?username=channel_user&password=$PASSWORD")
curl -s --cacert ca.pem -H "Authorization: Bearer $TOKEN" -o /dev/null \
  -w 'verify over HTTPS: %{http_code}\n' https://localhost:8080/verify
tessera token check "$TOKEN"
kill %1 && wait
