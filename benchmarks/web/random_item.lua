-- wrk script: each request asks for a random item, /item/1 to /item/1000.
local counter = 0

setup = function(thread)
  counter = counter + 1
  thread:set("seed", os.time() + counter)
end

init = function(args)
  math.randomseed(seed)
end

request = function()
  return wrk.format("GET", "/item/" .. math.random(1, 1000))
end
