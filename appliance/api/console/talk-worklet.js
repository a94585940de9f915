// Microphone -> 8 kHz 16-bit PCM in 20 ms frames (160 samples), posted to
// the page, which sends each as one binary WebSocket message. The
// decimator averages the input samples that fall in each output sample's
// window (a box low-pass: speech energy above 4 kHz is small).
class Downsampler extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / 8000;
    this.acc = 0; this.n = 0; this.pos = 0;
    this.frame = new Int16Array(160); this.fill = 0;
  }
  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    for (let i = 0; i < input.length; i++) {
      this.acc += input[i]; this.n++; this.pos += 1;
      if (this.pos >= this.step) {
        this.pos -= this.step;
        const v = Math.max(-1, Math.min(1, this.acc / this.n));
        this.acc = 0; this.n = 0;
        this.frame[this.fill++] = Math.round(v * 32767);
        if (this.fill === 160) {
          this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
          this.frame = new Int16Array(160); this.fill = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor('vb-downsampler', Downsampler);
