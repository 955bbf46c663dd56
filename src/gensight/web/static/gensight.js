/* Gensight charts: draws every <canvas data-chart="NAME"> from the page's
 * <script type="application/json" id="gensight-charts"> block with Chart.js.
 * The server builds the whole Chart.js config; this file only adds number formats
 * (named in each config's "gensight" key) and keeps the charts in window.gensightCharts.
 * Everything else on the page works without JavaScript. */
(function () {
  "use strict";
  var source = document.getElementById("gensight-charts");
  if (!source || typeof Chart === "undefined") return;
  var configs = JSON.parse(source.textContent);

  var formats = {
    int: function (v) { return Number(v).toLocaleString("en-US", { maximumFractionDigits: 0 }); },
    ms: function (v) { return v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms"; },
    s: function (v) { return Number(v).toFixed(2) + " s"; },
    usd: function (v) {
      if (v === 0) return "$0";
      var a = Math.abs(v);
      if (a >= 1) return "$" + v.toFixed(2);
      if (a >= 0.01) return "$" + v.toFixed(4);
      if (a < 1e-8) return "<$0.00000001";
      return "$" + v.toFixed(1 - Math.floor(Math.log10(a)));  // two significant digits
    },
    pct: function (v) { return (v * 100).toFixed(1) + "%"; },
    num: function (v) { return Number(v).toLocaleString("en-US", { maximumFractionDigits: 2 }); }
  };
  // axis ticks are round numbers: show them without trailing zeros ($0.006, not $0.006000)
  var tickFormats = {
    usd: function (v) { return "$" + Number(v).toFixed(8).replace(/\.?0+$/, ""); }
  };

  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.font.size = 11;
  Chart.defaults.color = "#4a5563";
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.animation = false;
  Chart.defaults.plugins.legend.labels.boxWidth = 12;

  function withFormats(config) {
    var fmt = config.gensight || {};
    delete config.gensight;
    var options = config.options = config.options || {};
    var scales = options.scales = options.scales || {};
    ["x", "y", "y1"].forEach(function (axis) {
      var f = tickFormats[fmt[axis]] || formats[fmt[axis]];
      if (!f || config.type === "doughnut") return;
      scales[axis] = scales[axis] || {};
      scales[axis].ticks = scales[axis].ticks || {};
      if (fmt[axis] === "int") scales[axis].ticks.precision = 0;
      scales[axis].ticks.callback = function (value) {
        var scale = this;
        // category axes pass an index; only numeric axes get the format
        return scale.type === "category" ? scale.getLabelForValue(value) : f(value);
      };
    });
    var valueAxis = fmt.y ? "y" : "x";
    var f = formats[fmt[valueAxis]] || formats.int;
    options.plugins = options.plugins || {};
    options.plugins.tooltip = {
      callbacks: {
        label: function (ctx) {
          var raw = ctx.raw;
          var v = raw !== null && typeof raw === "object" ? raw[valueAxis] : raw;
          var own = formats[ctx.dataset.gensightFormat] || f;
          var text = v === null || v === undefined ? "–" : own(v);
          if (raw !== null && typeof raw === "object" && fmt.x) {
            text = formats[fmt.x](raw.x) + " tokens, " + text;
          }
          return (ctx.dataset.label ? ctx.dataset.label + ": " : "") + text;
        }
      }
    };
    options.interaction = options.interaction || (config.type === "scatter" || config.type === "doughnut"
      ? { mode: "nearest", intersect: true } : { mode: "index", intersect: false });
    return config;
  }

  window.gensightCharts = {};
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var name = canvas.getAttribute("data-chart");
    var config = configs[name];
    if (!config) return;
    window.gensightCharts[name] = new Chart(canvas, withFormats(config));
  });
})();
