#!/usr/bin/python3
"""Call one SES operation with boto3 (Debian's python3-boto3), as an
application that talks to Amazon SES would, with only the endpoint and the
credentials changed: endpoint_url=http://HOST:PORT, any region, the key's id
and secret. No retries, so that each call is exactly one request.

usage: ses_boto3.py ENDPOINT REGION KEY_ID SECRET ses|sesv2 OPERATION KWARGS_JSON

OPERATION is the boto3 method (send_email, send_raw_email, get_account, ...);
KWARGS_JSON its arguments, where {"__bytes__": "text"} stands for the bytes
of text (a blob, which boto3 base64-encodes itself).

Prints one JSON line:
  {"ok": RESPONSE, "types": RESPONSE with each leaf replaced by its Python
   type name, "signed": {"url", "host", "signed_headers"}}
  {"error": {"code", "message", "status", "request_id", "class", "modeled"}}
where "modeled" is true when the class raised is client.exceptions.<class>,
the exception botocore maps from the error code of the service model.
"""
import json
import sys
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions

endpoint, region, key_id, secret, service, operation, kwargs_json = sys.argv[1:8]


def blobs(v):
    if isinstance(v, dict):
        if set(v) == {'__bytes__'}:
            return v['__bytes__'].encode('utf-8')
        return {k: blobs(x) for k, x in v.items()}
    if isinstance(v, list):
        return [blobs(x) for x in v]
    return v


def types(v):
    if isinstance(v, dict):
        return {k: types(x) for k, x in v.items()}
    if isinstance(v, list):
        return [types(x) for x in v]
    return type(v).__name__


client = boto3.client(
    service,
    endpoint_url=endpoint,
    region_name=region,
    aws_access_key_id=key_id,
    aws_secret_access_key=secret,
    config=botocore.config.Config(
        retries={'total_max_attempts': 1, 'mode': 'standard'},
        connect_timeout=10,
        read_timeout=30,
    ),
)

signed = {}


def record(request, **_):
    """The request as botocore signed it (before-send: after signing)."""
    auth = request.headers.get('Authorization', b'')
    auth = auth.decode() if isinstance(auth, bytes) else auth
    signed['url'] = request.url
    signed['host'] = urlsplit(request.url).netloc
    signed['signed_headers'] = auth.split('SignedHeaders=', 1)[-1].split(',', 1)[0]


client.meta.events.register('before-send.*', record)

try:
    response = getattr(client, operation)(**blobs(json.loads(kwargs_json)))
except botocore.exceptions.ClientError as e:
    cls = type(e).__name__
    print(json.dumps({'error': {
        'code': e.response.get('Error', {}).get('Code'),
        'message': e.response.get('Error', {}).get('Message'),
        'status': e.response.get('ResponseMetadata', {}).get('HTTPStatusCode'),
        'request_id': e.response.get('ResponseMetadata', {}).get('RequestId'),
        'class': cls,
        'modeled': type(e) is getattr(client.exceptions, cls, None),
    }}))
    sys.exit(0)
print(json.dumps({'ok': response, 'types': types(response), 'signed': signed}, default=str))
