import Type, { type Static } from 'typebox';
import { Conditions, Root, StringList, Template } from './common.ts';

export const SourceTemplate = Type.Object(
  {
    name: Type.Optional(Type.String({ description: 'Name of the source template.' })),
    text: Type.String({ description: 'Go text/template source, typically define blocks.' }),
  },
  { description: 'Template text shared by the templates; never rendered on its own.' },
);
export type SourceTemplate = Static<typeof SourceTemplate>;

export const SecretTransformationSpec = Type.Object(
  {
    templates: Type.Optional(
      Type.Record(Type.String(), Template, { description: 'Templates rendered under their map key.' }),
    ),
    sourceTemplates: Type.Optional(
      Type.Array(SourceTemplate, { description: 'Shared template definitions available to every template.' }),
    ),
    includes: Type.Optional(StringList('RE2 patterns of source keys to keep; applied after excludes.')),
    excludes: Type.Optional(StringList('RE2 patterns of source keys to drop; applied first.')),
  },
  { description: 'Reusable templates and key filters.' },
);
export type SecretTransformationSpec = Static<typeof SecretTransformationSpec>;

export const SecretTransformationStatus = Type.Object(
  {
    valid: Type.Boolean({ description: 'Every template parsed.' }),
    error: Type.String({ description: 'Why the templates are not valid.' }),
    conditions: Type.Optional(Conditions()),
  },
  { description: 'Observed state of the SecretTransformation.' },
);
export type SecretTransformationStatus = Static<typeof SecretTransformationStatus>;

export const SecretTransformationSchema = Root(
  'Templates and filters that secret resources can reference through transformationRefs.',
  SecretTransformationSpec,
  SecretTransformationStatus,
);
export type SecretTransformation = Static<typeof SecretTransformationSchema>;
