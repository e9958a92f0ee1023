// The view's side of the MCP Apps extension: JSON-RPC 2.0 over postMessage with the host that embeds it.
// Only the host (window.parent) is listened to; nothing here touches the network.
"use strict";
var Bridge = (function () {
  var nextId = 1;
  var pending = {};
  var handlers = {};
  function post(message) { window.parent.postMessage(message, "*"); }
  function request(method, params) {
    var id = nextId++;
    post({ jsonrpc: "2.0", id: id, method: method, params: params || {} });
    return new Promise(function (resolve, reject) { pending[id] = { resolve: resolve, reject: reject }; });
  }
  function notify(method, params) { post({ jsonrpc: "2.0", method: method, params: params || {} }); }
  window.addEventListener("message", function (event) {
    if (event.source !== window.parent) { return; }
    var message = event.data;
    if (!message || message.jsonrpc !== "2.0") { return; }
    if (message.method === undefined && pending[message.id]) {
      var waiting = pending[message.id];
      delete pending[message.id];
      if (message.error) { waiting.reject(message.error); } else { waiting.resolve(message.result); }
      return;
    }
    var handler = handlers[message.method];
    if (handler) { handler(message.params || {}); }
    if (message.id !== undefined && message.method) { post({ jsonrpc: "2.0", id: message.id, result: {} }); }
  });
  function resized() {
    notify("ui/notifications/size-changed", { width: document.documentElement.scrollWidth,
      height: document.documentElement.scrollHeight });
  }
  function start(onResult) {
    handlers["ui/notifications/tool-result"] = function (result) { onResult(result); resized(); };
    return request("ui/initialize", {
      protocolVersion: "2026-01-26", appInfo: { name: "pec-mcp", version: "1" }, appCapabilities: {}
    }).then(function () { notify("ui/notifications/initialized", {}); });
  }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }  // text, never HTML
    return node;
  }
  return { start: start, request: request, notify: notify, resized: resized, el: el };
}());
