-- Views Kamailio reads instead of keeping a second user list or a hand-edited bridge list.
-- Applied (idempotently) by `python manage.py kamailio_db` after the Django migrations; the
-- command fills in {node_timeout_s} from SIP_NODE_TIMEOUT_S. A later Django migration that drops
-- or retypes a column used here must DROP these views first (PostgreSQL refuses otherwise);
-- re-running the command recreates them.

-- auth_db: digest against TalkyAI's SIP accounts. HA1 only (calculate_ha1 0); a disabled account
-- is simply absent, so it fails exactly like an unknown user.
CREATE OR REPLACE VIEW kam_subscriber AS
    SELECT id, username, realm, ha1
      FROM telephony_sipaccount
     WHERE active;

-- dispatcher: every live bridge node (heartbeat younger than the node timeout, not stopped).
-- flags 8 = probe with OPTIONS; 9 = inactive + probing for a draining node, so a reload never
-- puts a draining bridge back in rotation. duid/maxload drive alg 10 (fewest calls, capped at
-- the bridge's --max-calls). A bridge bound to a wildcard is reached at its advertised address.
CREATE OR REPLACE VIEW kam_dispatcher AS
    WITH live AS (
        SELECT n.*,
               CASE WHEN n.host IN ('0.0.0.0', '::', '') THEN n.advertised ELSE n.host END AS addr
          FROM telephony_bridgenode n
         WHERE n.stopped_at IS NULL
           AND n.heartbeat_at > now() - interval '{node_timeout_s} seconds'
    )
    SELECT id::integer AS id,
           1 AS setid,
           ('sip:' || CASE WHEN position(':' IN addr) > 0 THEN '[' || addr || ']' ELSE addr END
                   || ':' || sip_port)::varchar(192) AS destination,
           CASE WHEN draining THEN 9 ELSE 8 END AS flags,
           0 AS priority,
           ('duid=' || id || ';maxload=' || max_calls || ';weight=' || max_calls)::varchar(128) AS attrs,
           left(name, 64)::varchar(64) AS description
      FROM live
     WHERE addr <> '';

-- What the edge polls every second (rtimer + sqlops): when this changes (a bridge joined, died,
-- or started draining) it runs ds_reload(). One small query per second per proxy.
CREATE OR REPLACE VIEW kam_dispatcher_state AS
    SELECT md5(coalesce(string_agg(id || ' ' || flags || ' ' || destination, ',' ORDER BY id), '')) AS fingerprint,
           count(*) AS destinations
      FROM kam_dispatcher;
