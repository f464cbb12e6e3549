// Draws every <figure class="chart"> from the JSON the server embedded in it, with uPlot.
// Spec: {"kind": "line"|"bars", "time": bool, "x": [...], "labels": [...]?, "series": [{"label", "values"}]}
(function () {
  "use strict";
  var colours = ["#1f6f54", "#2f6fb0", "#b35c1e", "#7b3fa0", "#8a8a1e"];

  function draw(figure) {
    var spec = JSON.parse(figure.querySelector("script[type='application/json']").textContent);
    var target = figure.querySelector(".plot");
    var bars = spec.kind === "bars";
    var xSeries = spec.labels ? {label: "period", value: function (u, i) { return i == null ? "--" : spec.labels[i]; }}
                              : {label: spec.time ? "time (UTC)" : "x"};
    var series = [xSeries].concat(spec.series.map(function (s, i) {
      var one = {label: s.label, stroke: colours[i % colours.length], width: 1.5};
      if (bars) {
        one.fill = colours[i % colours.length] + "aa";
        one.paths = uPlot.paths.bars({size: [0.6 / spec.series.length, 60], align: 0});
        one.points = {show: false};
      }
      return one;
    }));
    var axes = [{}, {size: 72}];  // wide enough for signed, grouped numbers
    var scales = {x: {time: !!spec.time}};
    if (spec.labels) {
      axes[0] = {splits: function () { return spec.x; },
                 values: function (u, splits) { return splits.map(function (i) { return spec.labels[i] || ""; }); }};
    }
    if (bars) {
      // One slot per category, and zero always in view: a bar's length is its value.
      scales.x.auto = false;
      scales.x.range = [-0.5, spec.x.length - 0.5];
      scales.y = {range: function (u, min, max) {
        var low = Math.min(0, min), high = Math.max(0, max), pad = (high - low) * 0.08 || 1;
        return [low < 0 ? low - pad : 0, high > 0 ? high + pad : 0];
      }};
    }
    var opts = {
      width: Math.max(target.clientWidth, 300), height: 240, series: series, axes: axes,
      scales: scales, legend: {live: true},
      // The pages give every time in UTC; so do the charts, whatever the browser's zone.
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); }
    };
    var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
    var plot = new uPlot(opts, data, target);
    window.addEventListener("resize", function () {
      plot.setSize({width: Math.max(target.clientWidth, 300), height: 240});
    });
    figure.dataset.rendered = "true";
  }

  document.querySelectorAll("figure.chart").forEach(draw);
})();
