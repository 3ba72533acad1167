/*
 * The Lua scripts certqd runs in Redis.  Each moves jobs between keys in one
 * atomic step, so a crash between two commands can never lose or duplicate a job.
 * Keys are built from the prefix inside the scripts, so certqd needs a standalone
 * Redis (or one Redis Cluster slot), not a sharded cluster.
 */
#include "daemon/scripts.h"

/*
 * Moves up to ARGV[1] payloads into this instance's held hash: first what the
 * blocking pop left in the taking list, then from the queue.  Each gets a fresh
 * number from the shared counter, so running the script again after a lost
 * reply can never overwrite a held job.  KEYS: queue, taking list, held hash,
 * counter.  Returns {seq, payload, ...}.
 */
const char script_claim[] =
    "local max = tonumber(ARGV[1])\n"
    "local seq = redis.call('INCRBY', KEYS[4], max) - max + 1\n"
    "local out, fields = {}, {}\n"
    "local function take(p)\n"
    "  fields[#fields+1] = tostring(seq); fields[#fields+1] = p\n"
    "  out[#out+1] = tostring(seq); out[#out+1] = p\n"
    "  seq = seq + 1\n"
    "end\n"
    "while #out < 2 * max do\n"
    "  local p = redis.call('RPOP', KEYS[2])\n"
    "  if not p then break end\n"
    "  take(p)\n"
    "end\n"
    "local want = max - #out / 2\n"
    "if want > 0 then\n"
    "  local items = redis.call('RPOP', KEYS[1], want)\n"
    "  if items then for _, p in ipairs(items) do take(p) end end\n"
    "end\n"
    "if #fields > 0 then redis.call('HSET', KEYS[3], unpack(fields)) end\n"
    "return out\n";

/*
 * Registers parsed jobs.  ARGV: prefix, instance, now_ms, then six per job: id,
 * seq, server, user, reply_to ('' for none), payload to store in place of the
 * held one ('' to keep it).
 * A job whose id already has a state other than failed is a duplicate, unless
 * this instance owns it (a retry, or a claim whose reply was lost) or recovery
 * requeued it.  Returns per job {'dup', state, result}, {'new', attempts,
 * first_attempt_ms, state, reconcile_reads} for a job seen before, or 0 for a
 * new job (the common case, kept small for Redis and certqd).
 */
const char script_accept[] =
    "local prefix, inst, now = ARGV[1], ARGV[2], ARGV[3]\n"
    "local held = prefix .. ':held:' .. inst\n"
    "local out, fresh = {}, 0\n"
    "for i = 4, #ARGV, 6 do\n"
    "  local id, seq, server, user, reply_to, payload = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5]\n"
    "  local key = prefix .. ':job:' .. id\n"
    "  local owner = inst .. '/' .. seq\n"
    "  local h = redis.call('HMGET', key, 'state', 'requeued', 'owner', 'attempts', 'result', 'first_attempt_ms', 'created_at_ms', 'reconcile_reads')\n"
    "  local state = h[1]\n"
    "  local mine = state and h[3] == owner\n"
    "  if state and state ~= 'failed' and h[2] ~= '1' and not mine then\n"
    "    redis.call('HDEL', held, seq)\n"
    "    out[#out+1] = {'dup', state, h[5] or ''}\n"
    "  else\n"
    "    local attempts, first, created = '0', '', now\n"
    "    local existed = state\n"
    "    if state == 'failed' then redis.call('DEL', key) end\n"
    "    if state == 'failed' or not state then\n"
    "      state = 'queued'\n"
    "      existed = nil\n"
    "      fresh = fresh + 1\n"
    "    else\n"
    "      attempts, first, created = h[4] or '0', h[6] or '', h[7] or now\n"
    "      if not mine then state = 'queued' end\n"
    "    end\n"
    "    local fields = {'state', state, 'server', server, 'user', user, 'attempts', attempts,\n"
    "                    'created_at_ms', created, 'updated_at_ms', now, 'owner', owner}\n"
    "    if reply_to ~= '' then fields[#fields+1] = 'reply_to'; fields[#fields+1] = reply_to end\n"
    "    redis.call('HSET', key, unpack(fields))\n"
    "    if existed then\n"
    "      redis.call('HDEL', key, 'requeued', 'payload')\n"
    "      redis.call('PERSIST', key)\n"
    "    end\n"
    "    if payload ~= '' then redis.call('HSET', held, seq, payload) end\n"
    "    if existed then out[#out+1] = {'new', attempts, first, state, h[8] or '0'} else out[#out+1] = 0 end\n"
    "  end\n"
    "end\n"
    "if fresh > 0 then redis.call('HINCRBY', prefix .. ':stats', 'received', fresh) end\n"
    "return out\n";

/*
 * Moves jobs whose time has come out of a sorted set of ids (retries, or jobs
 * waiting for reconciliation) into the held hash.  KEYS: the sorted set, held
 * hash, counter.  ARGV: prefix, instance, now_ms, max.  Returns {seq, payload, ...}.
 */
const char script_due[] =
    "local prefix, inst = ARGV[1], ARGV[2]\n"
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))\n"
    "local out = {}\n"
    "local seq = redis.call('INCRBY', KEYS[3], #ids) - #ids + 1\n"
    "for _, id in ipairs(ids) do\n"
    "  redis.call('ZREM', KEYS[1], id)\n"
    "  local key = prefix .. ':job:' .. id\n"
    "  local p = redis.call('HGET', key, 'payload')\n"
    "  if p then\n"
    "    redis.call('HSET', KEYS[2], tostring(seq), p)\n"
    "    redis.call('HSET', key, 'owner', inst .. '/' .. tostring(seq))\n"
    "    redis.call('HDEL', key, 'payload')\n"
    "    out[#out+1] = tostring(seq); out[#out+1] = p\n"
    "    seq = seq + 1\n"
    "  end\n"
    "end\n"
    "return out\n";

/*
 * Recovers the jobs of every instance whose heartbeat key has expired.  Jobs that
 * were not being submitted go back to the queue; jobs whose request may have
 * reached cPanel go to the reconcile set with their payload, and the dead
 * instance's account leases are released.  Running as one
 * script means two live instances can never both take a dead one's job.
 * ARGV: prefix, this instance, now_ms.  Returns {instance, requeued, reconciling} per dead instance.
 */
const char script_recover[] =
    "local prefix, me, now = ARGV[1], ARGV[2], ARGV[3]\n"
    "local queue = prefix .. ':queue'\n"
    "local report = {}\n"
    "for _, inst in ipairs(redis.call('SMEMBERS', prefix .. ':instances')) do\n"
    "  if inst ~= me and redis.call('EXISTS', prefix .. ':instance:' .. inst) == 0 then\n"
    "    local requeued, reconciling = 0, 0\n"
    "    local taking = prefix .. ':taking:' .. inst\n"
    "    while redis.call('LMOVE', taking, queue, 'LEFT', 'RIGHT') do requeued = requeued + 1 end\n"
    "    local held = prefix .. ':held:' .. inst\n"
    "    local h = redis.call('HGETALL', held)\n"
    "    for i = 1, #h, 2 do\n"
    "      local seq, p = h[i], h[i+1]\n"
    "      local ok, obj = pcall(cjson.decode, p)\n"
    "      local id = nil\n"
    "      if ok and type(obj) == 'table' and type(obj.id) == 'string' then id = obj.id end\n"
    "      local key = id and (prefix .. ':job:' .. id)\n"
    "      local st = {}\n"
    "      if key then st = redis.call('HMGET', key, 'state', 'owner', 'server', 'user') end\n"
    "      if st[3] and st[4] then\n"
    "        local lease = prefix .. ':lease:' .. st[3] .. ':' .. st[4]\n"
    "        for _, m in ipairs(redis.call('ZRANGE', lease, 0, -1)) do\n"
    "          if string.sub(m, 1, #inst + 1) == inst .. '|' then redis.call('ZREM', lease, m) end\n"
    "        end\n"
    "      end\n"
    "      local owned = st[2] == inst .. '/' .. seq\n"
    "      if owned and st[1] == 'submitting' then\n"
    "        redis.call('HSET', key, 'payload', p, 'owner', '', 'recovered_from', inst)\n"
    "        redis.call('ZADD', prefix .. ':reconcile', now, id)\n"
    "        reconciling = reconciling + 1\n"
    "      else\n"
    "        redis.call('RPUSH', queue, p)\n"
    "        if owned then redis.call('HSET', key, 'requeued', '1', 'owner', '', 'state', 'queued') end\n"
    "        requeued = requeued + 1\n"
    "      end\n"
    "    end\n"
    "    redis.call('DEL', held)\n"
    "    redis.call('SREM', prefix .. ':instances', inst)\n"
    "    report[#report+1] = {inst, requeued, reconciling}\n"
    "  end\n"
    "end\n"
    "return report\n";

/*
 * Returns jobs this instance holds but never sent to the front of the queue, at
 * shutdown.  ARGV: prefix, instance, then pairs of seq and id ('' when the job
 * was never parsed).  Also empties the taking list.  Returns the count returned.
 */
const char script_release[] =
    "local prefix, inst = ARGV[1], ARGV[2]\n"
    "local queue, held = prefix .. ':queue', prefix .. ':held:' .. inst\n"
    "local n = 0\n"
    "while redis.call('LMOVE', prefix .. ':taking:' .. inst, queue, 'LEFT', 'RIGHT') do n = n + 1 end\n"
    "for i = 3, #ARGV, 2 do\n"
    "  local seq, id = ARGV[i], ARGV[i+1]\n"
    "  local p = redis.call('HGET', held, seq)\n"
    "  if p then\n"
    "    redis.call('RPUSH', queue, p)\n"
    "    redis.call('HDEL', held, seq)\n"
    "    if id ~= '' then\n"
    "      local key = prefix .. ':job:' .. id\n"
    "      if redis.call('HGET', key, 'owner') == inst .. '/' .. seq then\n"
    "        redis.call('HSET', key, 'requeued', '1', 'owner', '', 'state', 'queued')\n"
    "      end\n"
    "    end\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

/*
 * Takes a lease on a cPanel account for one request and records its jobs as
 * submitting, in one step.  cPanel serialises orders per account, so the
 * lease (a sorted set of batch ids scored by expiry) caps requests per
 * account across all instances.  The lease outlives the request's timeout,
 * so it needs no renewal, and expires if its holder dies.  A batch whose
 * member is already there (a run whose reply was lost) keeps its place, and
 * expired members are only dropped when the account looks full, which saves
 * two commands on every request.
 * ARGV: prefix, "server:user", lease member ("instance|batch id"), limit, lease
 * ms, now_ms, then three per job: id, attempts, first_attempt_ms.  Returns 1,
 * or 0 when the account is busy.
 */
const char script_mark[] =
    "local prefix, member, now = ARGV[1], ARGV[3], tonumber(ARGV[6])\n"
    "local batch = string.sub(member, string.find(member, '|', 1, true) + 1)\n"
    "local lease, limit = prefix .. ':lease:' .. ARGV[2], tonumber(ARGV[4])\n"
    "if redis.call('ZADD', lease, now + tonumber(ARGV[5]), member) == 1 and redis.call('ZCARD', lease) > limit then\n"
    "  redis.call('ZREMRANGEBYSCORE', lease, '-inf', now)\n"
    "  if redis.call('ZCARD', lease) > limit then\n"
    "    redis.call('ZREM', lease, member)\n"
    "    return 0\n"
    "  end\n"
    "end\n"
    "redis.call('PEXPIRE', lease, tonumber(ARGV[5]))\n"
    "for i = 7, #ARGV, 3 do\n"
    "  redis.call('HSET', prefix .. ':job:' .. ARGV[i], 'state', 'submitting', 'batch_id', batch,\n"
    "             'attempts', ARGV[i+1], 'first_attempt_ms', ARGV[i+2], 'updated_at_ms', ARGV[6])\n"
    "end\n"
    "redis.call('HINCRBY', prefix .. ':stats', 'requests_sent', 1)\n"
    "return 1\n";
