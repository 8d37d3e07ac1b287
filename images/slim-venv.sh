#!/bin/sh
# slim-venv: drop what no stockpipe workload loads from /opt/venv (the stream image's budget is 350 MB):
# test suites, C headers and Cython sources, Arrow Flight (loaded only by pyarrow.flight, unused), pyarrow's
# S3 filesystem unless asked to keep it, botocore's models of services other than S3 and
# the credential services, and byte code (written at run time under PYTHONPYCACHEPREFIX instead).
set -eu
site=/opt/venv/lib/python3.11/site-packages
find "$site" -depth -type d -name __pycache__ -exec rm -rf {} +
for suite in pandas/tests pyarrow/tests numpy/tests numpy/*/tests numpy/*/*/tests; do
  for path in "$site"/$suite; do if [ -d "$path" ]; then rm -rf "$path"; fi; done
done
if [ -d "$site/pyarrow" ]; then
  rm -rf "$site/pyarrow/include" "$site/pyarrow/src"
  # pyarrow's own S3 filesystem: only the bronze loader reads the lake with it (`slim-venv keep-arrow-s3`);
  # elsewhere the lake goes through s3fs, and pyarrow.fs imports it optionally.
  if [ "${1:-}" != keep-arrow-s3 ]; then rm -f "$site"/pyarrow/libarrow_s3.so* "$site"/pyarrow/_s3fs*.so; fi
  rm -f "$site"/pyarrow/libarrow_flight.so* "$site"/pyarrow/_flight*.so "$site"/pyarrow/flight.py \
        "$site"/pyarrow/_substrait*.so "$site"/pyarrow/substrait.py
  find "$site/pyarrow" \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' -o -name '*.cc' \) -delete
fi
if [ -d "$site/botocore/data" ]; then
  for model in "$site"/botocore/data/*/; do
    case "$(basename "$model")" in s3|sts|sso|sso-oidc|sdk-default-configuration) ;; *) rm -rf "$model" ;; esac
  done
fi
# Wheels cannot hold symlinks, so pyarrow ships its Python bridge three times: keep one, link the rest.
if [ -f "$site/pyarrow/libarrow_python.so.2600" ]; then
  for copy in "$site"/pyarrow/libarrow_python.so "$site"/pyarrow/libarrow_python.so.2600.*; do
    if [ -f "$copy" ] && cmp -s "$copy" "$site/pyarrow/libarrow_python.so.2600"; then
      ln -sf libarrow_python.so.2600 "$copy"
    fi
  done
fi
