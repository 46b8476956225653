export declare const FEATURES: string[];
export declare const CLASSES: string[];
export declare const BASELINE: string;
export declare function buildBaseline(): void;
