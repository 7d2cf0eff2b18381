-- tmrun.stop_text: stop strings on streamed text.  The engine stops generation when
-- a stop string appears in the decoded text; here the text shown to a user is cut
-- at it, and while streaming, text that could still turn into a stop string is held
-- back so a stop string is never shown in part.
local M = {}

-- text up to (not including) the first occurrence of stop; text itself if absent.
function M.cut(text, stop)
  local i = text:find(stop, 1, true)
  if i then return text:sub(1, i - 1) end
  return text
end

local Holder = {}
Holder.__index = Holder

-- A holder for a list of stop strings (nil or empty: passes text straight through).
function M.holder(stops)
  return setmetatable({ stops = stops or {}, pending = "" }, Holder)
end

-- Length of the longest suffix of s that is a proper prefix of some stop string.
local function held_suffix(s, stops)
  local keep = 0
  for _, stop in ipairs(stops) do
    for k = math.min(#stop - 1, #s), keep + 1, -1 do
      if s:sub(-k) == stop:sub(1, k) then
        keep = k
        break
      end
    end
  end
  return keep
end

-- Adds new text; returns the part that is safe to show now.
function Holder:push(text)
  if #self.stops == 0 then return text end
  local s = self.pending .. text
  for _, stop in ipairs(self.stops) do
    local i = s:find(stop, 1, true)
    if i then -- the engine stops right after this; show nothing past the stop
      self.pending = ""
      self.stopped = true
      return s:sub(1, i - 1)
    end
  end
  local keep = held_suffix(s, self.stops)
  self.pending = s:sub(#s - keep + 1)
  return s:sub(1, #s - keep)
end

-- The end of the text (no stop string): everything still held, plus tail.
function Holder:flush(tail)
  if self.stopped then return "" end
  local s = self.pending .. (tail or "")
  self.pending = ""
  return s
end

-- The end of the text by stop string `stop`: what is held, cut at the stop.
function Holder:finish_at(tail, stop)
  if self.stopped then return "" end
  local s = self.pending .. (tail or "")
  self.pending = ""
  return M.cut(s, stop)
end

return M
