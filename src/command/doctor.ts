import type { Command } from './context.ts';
export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'TODO',
  synopsis: '',
  description: '',
  options: {},
  optionHelp: {},
  positionals: { min: 0, max: 0 },
  run: async () => 0,
};
