-- Both seed rules translated by hand to DuckDB SQL, with tokenscan's
-- semantics (docs/rule-semantics.md), for the replay benchmark.
-- `$capture` is replaced by the capture path. Event index = file_row_number.
WITH vis AS (
  SELECT file_row_number AS event_index, kind, path, flags, comm, container_id, tty, args
  FROM read_parquet('$capture', file_row_number = true)
  WHERE kind = 'exec' OR (kind = 'open' AND (result >= 0 OR (result IS NULL AND path IS NOT NULL)))
)
-- Elastic 66229f32 (v3): any where host.os.type == "linux" and process.interactive == true
-- and container.id like "*" and (file branch or exec branch); ignore_above 1024 on keywords.
SELECT '66229f32-c460-410d-bc37-4b32322cd4bb' AS rule_id, event_index FROM vis
WHERE container_id IS NOT NULL AND length(container_id) <= 1024 AND tty IS NOT NULL AND (
  (kind = 'open' AND (flags & 3) IN (1, 2) AND path IN (
     '/var/run/secrets/kubernetes.io/serviceaccount/token',
     '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
     '/run/secrets/kubernetes.io/serviceaccount/token',
     '/run/secrets/kubernetes.io/serviceaccount/ca.crt'))
  OR (kind = 'exec'
      AND (comm IN ('cat', 'head', 'tail', 'more', 'less', 'sed', 'awk')
           OR len(list_filter(args, lambda x: x IN (
             'cat', '/bin/cat', '/usr/bin/cat', '/usr/local/bin/cat',
             'head', '/bin/head', '/usr/bin/head', '/usr/local/bin/head',
             'tail', '/bin/tail', '/usr/bin/tail', '/usr/local/bin/tail',
             'more', '/bin/more', '/usr/bin/more', '/usr/local/bin/more',
             'less', '/bin/less', '/usr/bin/less', '/usr/local/bin/less',
             'sed', '/bin/sed', '/usr/bin/sed', '/usr/local/bin/sed',
             'awk', '/bin/awk', '/usr/bin/awk', '/usr/local/bin/awk'))) > 0)
      AND len(list_filter(args, lambda x: length(x) <= 1024 AND (
             x LIKE '%/run/secrets/kubernetes.io/serviceaccount/token%'
             OR x LIKE '%/run/secrets/kubernetes.io/serviceaccount/ca.crt%'))) > 0))
UNION ALL
-- Tracee TRC-108 (seed): security_file_open from a container, comm not allow-listed,
-- IsFileRead(flags), RE2 regex on the resolved pathname.
SELECT 'TRC-108' AS rule_id, event_index FROM vis
WHERE kind = 'open' AND container_id IS NOT NULL
  AND comm NOT IN ('flanneld', 'kube-proxy', 'etcd', 'kube-apiserver', 'coredns', 'kube-controller', 'kubectl')
  AND path IS NOT NULL AND flags IS NOT NULL AND (flags & 3) IN (0, 2)
  AND regexp_matches(path, 'secrets/kubernetes.io/serviceaccount.+token$')
