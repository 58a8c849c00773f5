// couponsvc console: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  // Live preview of an email template while it is typed.
  var form = document.getElementById("template-form");
  if (form && window.fetch) {
    var source = form.querySelector("textarea[name=source]");
    var timer = null;
    var show = function (data) {
      var error = document.getElementById("preview-error");
      if (data.error) { error.textContent = data.error; error.hidden = false; return; }
      error.hidden = true;
      document.getElementById("preview-subject").textContent = data.subject;
      document.getElementById("preview-text").textContent = data.text;
      document.getElementById("preview-html").srcdoc = data.html;
    };
    var refresh = function () {
      var body = new FormData(form);
      body.delete("action");
      fetch(form.dataset.preview, { method: "POST", body: body, headers: { "Accept": "application/json" },
                                    credentials: "same-origin" })
        .then(function (r) { return r.json(); }).then(show).catch(function () {});
    };
    source.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 350); });
  }

  // Upload progress for big CSV files (the import itself runs when the upload is complete).
  document.querySelectorAll("form[data-progress]").forEach(function (f) {
    f.addEventListener("submit", function (event) {
      if (!window.XMLHttpRequest || !window.FormData) { return; }
      event.preventDefault();
      var bar = document.getElementById(f.dataset.progress);
      bar.hidden = false;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", f.action);
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) { bar.value = 100 * e.loaded / e.total; } };
      xhr.upload.onload = function () { bar.removeAttribute("value"); };  // indeterminate while importing
      xhr.onload = function () {
        if (xhr.responseURL && xhr.status < 400) { window.location = xhr.responseURL; return; }
        document.open(); document.write(xhr.responseText); document.close();
      };
      xhr.send(new FormData(f));
    });
  });
})();
