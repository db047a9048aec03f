-- test/integration/rspamd/dotgate_rules.lua — symbols with scores the tests choose, for
-- test_rspamd.py (loaded by rspamd.conf in the same directory).
--   Subject contains "dotgate-score=N"  -> symbol DOTGATE_SCORE scoring N (its score 1.0 times N)
--   Subject contains "dotgate-milter"   -> rspamd's milter reply asks to add X-Dotgate-Milter
--                                          (twice, in both of its formats) and remove X-Remove-Me
--   Subject contains "dotgate-received"  -> the milter reply adds X-Dotgate-Received: how rspamd
--                                          parsed the top Received field (test_starttls.py's trace)

local function dotgate_score(task)
  local subject = task:get_subject() or ''
  local n = subject:match('dotgate%-score=(%-?[%d%.]+)')
  if n then
    task:insert_result('DOTGATE_SCORE', tonumber(n))
  end
  if subject:find('dotgate-milter', 1, true) then
    task:set_milter_reply({
      add_headers = {['X-Dotgate-Milter'] = {'plain', {value = 'with order', order = 0}}},
      remove_headers = {['X-Remove-Me'] = 0},
    })
  end
  if subject:find('dotgate-received', 1, true) then
    local r = (task:get_received_headers() or {})[1] or {}
    local flags = r.flags or {}
    task:set_milter_reply({
      add_headers = {['X-Dotgate-Received'] = string.format('proto=%s ssl=%s auth=%s ip=%s by=%s',
        tostring(r.proto), tostring(flags.ssl == true), tostring(flags.authenticated == true),
        tostring(r.real_ip or r.from_ip), tostring(r.by_hostname))},
    })
  end
end

rspamd_config:register_symbol({name = 'DOTGATE_SCORE', score = 1.0, callback = dotgate_score})
