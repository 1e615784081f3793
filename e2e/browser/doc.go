// Package browsere2e tests what a node serves to browsers (the operator
// dashboard at /admin/ and the JavaScript client at /client/presence.js)
// and what it allows browsers (PRESENCE_ALLOWED_ORIGINS) in a real headless
// Chromium, driven from Go with chromedp, against real nodes. The tests skip, saying why, where no Chromium is
// installed (apt-get install -y chromium).
package browsere2e
