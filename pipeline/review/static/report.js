// The inspection report's one button: the browser's own print dialog (print or save as PDF).
(function () {
  "use strict";
  var button = document.getElementById("print-report");
  if (button) button.addEventListener("click", function () { window.print(); });
})();
