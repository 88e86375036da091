"""Pure cost and energy models: prices, power, accounting. No I/O, no clock, no clients."""
