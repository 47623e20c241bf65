-- wrk script: a light /health probe, each connection waiting 20 ms between requests
-- (as a load balancer's checks would), so that the probe itself does not load the server.
delay = function()
  return 20
end
