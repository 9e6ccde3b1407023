// The queue: the point filter suggests points as one types (a registry of thousands does not
// fit one dropdown), and one box ticks every case on the page for a bulk action.
(function () {
  "use strict";
  var input = document.getElementById("point-filter");
  var list = document.getElementById("point-list");
  var timer = null, asked = null;

  function suggest() {
    var term = input.value.trim();
    if (term === asked) return;
    asked = term;
    fetch(input.dataset.src + "?q=" + encodeURIComponent(term), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { points: [] }; })
      .then(function (data) {
        if (term !== asked) return; // a later keystroke has asked again
        list.textContent = "";
        data.points.forEach(function (p) {
          var option = document.createElement("option");
          option.value = p.point_id;
          option.label = p.name + (p.district ? " · " + p.district : "");
          option.textContent = option.label;
          list.appendChild(option);
        });
      });
  }

  if (input && list) {
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(suggest, 150);
    });
    input.addEventListener("focus", suggest);
  }

  var all = document.getElementById("tick-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll('input[name="case_id"][form="bulk"]').forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }
})();
