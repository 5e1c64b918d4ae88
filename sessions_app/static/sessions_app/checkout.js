// Checkout page: live status by polling, and "Pay with wallet" through an EIP-1193 wallet.
(function () {
  "use strict";

  var live = document.getElementById("live-status");
  if (live && (live.dataset.status === "created" || live.dataset.status === "pending")) {
    var deadline = Date.now() + 60 * 60 * 1000;
    var poll = function () {
      if (Date.now() > deadline) return;
      fetch("/session/" + live.dataset.session + "/status", { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) {
          if (body && body.status !== live.dataset.status) { window.location.reload(); return; }
          window.setTimeout(poll, 3000);
        })
        .catch(function () { window.setTimeout(poll, 6000); });
    };
    window.setTimeout(poll, 3000);
  }

  var box = document.getElementById("web3");
  var button = document.getElementById("web3-pay");
  if (!box || !button) return;
  var message = document.getElementById("web3-message");
  var email = document.getElementById("email");
  var say = function (text) { if (message) message.textContent = text; };

  var hex = function (decimalString) { return "0x" + BigInt(decimalString).toString(16); };
  var pad = function (h) { return h.replace(/^0x/, "").padStart(64, "0"); };

  var submitTx = function (txHash) {
    return fetch("/session/" + box.dataset.session + "/web3/tx", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(email && email.value ? { tx_hash: txHash, email: email.value } : { tx_hash: txHash })
    });
  };

  button.addEventListener("click", function () {
    if (email && !email.checkValidity()) {
      email.reportValidity();
      return;
    }
    var eth = window.ethereum;
    if (!eth || typeof eth.request !== "function") {
      say("No browser wallet found. Scan the QR code with your wallet app instead.");
      return;
    }
    button.disabled = true;
    var wanted = "0x" + Number(box.dataset.chainId).toString(16);
    var from;
    eth.request({ method: "eth_requestAccounts" })
      .then(function (accounts) {
        from = accounts[0];
        return eth.request({ method: "eth_chainId" });
      })
      .then(function (chainId) {
        if (chainId !== wanted) {
          return eth.request({ method: "wallet_switchEthereumChain", params: [{ chainId: wanted }] });
        }
        return null;
      })
      .then(function () {
        var tx;
        if (box.dataset.assetType === "erc20") {
          // transfer(address,uint256)
          tx = { from: from, to: box.dataset.token,
                 data: "0xa9059cbb" + pad(box.dataset.address.toLowerCase()) + pad(hex(box.dataset.amount)) };
        } else {
          tx = { from: from, to: box.dataset.address, value: hex(box.dataset.amount) };
        }
        say("Confirm the payment in your wallet…");
        return eth.request({ method: "eth_sendTransaction", params: [tx] });
      })
      .then(function (txHash) {
        say("Transaction sent: " + txHash + ". Waiting for confirmations…");
        return submitTx(txHash);
      })
      .catch(function (err) {
        button.disabled = false;
        say((err && err.message) || "The wallet did not send the payment.");
      });
  });
})();
