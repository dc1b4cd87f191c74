import type { Command } from './context.ts';
export const statusCommand: Command = {
  name: 'status',
  summary: 'TODO',
  synopsis: '',
  description: '',
  options: {},
  optionHelp: {},
  positionals: { min: 0, max: 0 },
  run: async () => 0,
};
