-- One-certificate order per request, spread over 64 accounts (u1..u64)
-- so that two threads of the mock rarely serve the same account at once.
local body = "provider=cPStore&access_token=725431a1-d5bc-11e5-a28b-8b0e09a93f05&certificate=%7B%22product_id%22%3A143%2C%22price%22%3A6%2C%22subject_names%22%3A%5B%5B%22dNSName%22%2C%22example.com%22%5D%5D%2C%22vhost_names%22%3A%5B%22example.com%22%5D%7D"
local n = 0
request = function()
   n = n + 1
   local user = "u" .. (n % 64 + 1)
   return wrk.format("POST", nil, {
      ["Authorization"] = "cpanel " .. user .. ":token",
      ["Content-Type"] = "application/x-www-form-urlencoded",
   }, body)
end
