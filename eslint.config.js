// Flat config: typescript-eslint's recommended rules on top of ESLint's.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", "dist/", "artifacts/", "src/api/dashboard/vendor/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-constant-condition": ["error", { checkLoops: false }],
      // `import { z }` makes esbuild keep zod's whole namespace in the bundle, its 64 locales
      // with it (756 KB instead of 194 KB, loaded by every verb that validates a config).
      "no-restricted-syntax": [
        "error",
        {
          selector:
            "ImportDeclaration[source.value='zod'][importKind!='type'] > :matches(ImportSpecifier[imported.name='z'], ImportDefaultSpecifier)",
          message: 'import * as z from "zod" (the named import bundles all of zod)',
        },
      ],
    },
  },
  {
    files: ["src/api/dashboard/**/*.js"],
    languageOptions: {
      globals: {
        window: "readonly",
        document: "readonly",
        fetch: "readonly",
        EventSource: "readonly",
        uPlot: "readonly",
        localStorage: "readonly",
        prompt: "readonly",
      },
    },
  },
);
